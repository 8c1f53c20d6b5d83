"""Evaluate a trained model and write its reports into a folder of their own.

    $ python scripts/evaluate.py                               # artifacts/ on its own test split
    $ python scripts/evaluate.py --artifacts my-model --test-file other.csv --output-dir other-eval
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import evaluate_main


def main(argv=None):
    return evaluate_main(argv)


if __name__ == "__main__":
    sys.exit(main())
