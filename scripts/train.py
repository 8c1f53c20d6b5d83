"""Train a bidirectional GRU sentiment classifier and write its artifacts folder.

    $ python scripts/train.py                                  # the default corpus, into artifacts/
    $ python scripts/train.py --train-file train.csv --test-file test.csv --output-dir my-model
    $ python scripts/train.py --dataset imdb --max-length 256 --epochs 4
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import train_main


def main(argv=None):
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
