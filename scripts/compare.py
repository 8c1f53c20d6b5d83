"""Compare two trained models on the same split: accuracy, macro-F1, paired bootstrap and McNemar's test.

    $ python scripts/compare.py artifacts other-model                  # model A's data, test split
    $ python scripts/compare.py artifacts other-model --test-file reviews.csv --json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import compare_main


def main(argv=None):
    return compare_main(argv)


if __name__ == "__main__":
    sys.exit(main())
