"""Compare two trained models on the same split: accuracy, macro-F1, paired bootstrap and McNemar's test.

    $ python scripts/compare.py artifacts other-model                  # model A's data, test split
    $ python scripts/compare.py artifacts other-model --test-file reviews.csv --json
"""

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.cli import _gave_data, _quiet_datasets, add_data_arguments, data_config_from
from sentiment_gru.errors import EXIT_USER_ERROR, UserError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare", description="Compare two trained models on the same split.")
    parser.add_argument("dir_a", metavar="DIR_A", help="first model folder")
    parser.add_argument("dir_b", metavar="DIR_B", help="second model folder")
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("train", "validation", "test"), help="split to score (default: test, else the first given)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from sentiment_gru.compare import compare_models, format_comparison

    _quiet_datasets()
    try:
        result = compare_models(args.dir_a, args.dir_b, data_config_from(args) if _gave_data(args) else None, args.split)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
