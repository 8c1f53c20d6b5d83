"""Accuracy of the project's presets against TF-IDF + logistic regression, over several seeds; or a learning curve.

Trains the `snippets` preset on the default corpus (scored on its test split), the `treebank`
preset on SST-2 (train -> validation) and, with --imdb, the `reviews` preset on IMDB (train ->
a carved validation split, with NBSVM and a blend beside it), once per seed, with the baselines
scored on the same split in the same run; prints a Markdown table (mean ± std) and writes JSON:

    $ python scripts/benchmark_accuracy.py --sst2 path/to/sst2            # folder with train.csv, validation.csv
    $ python scripts/benchmark_accuracy.py --datasets default --seeds 13   # one run
    $ python scripts/benchmark_accuracy.py --datasets imdb --imdb path/to/imdb   # the reviews preset on IMDB
    $ python scripts/benchmark_accuracy.py --datasets imdb --imdb path/to/imdb --keep-models runs/   # keep the models

With --learning-curve DATA (a data file, or a folder with train/validation/test files), trains the GRU from scratch
and from a parent model (--init-from; default artifacts/ when it holds a model), TF-IDF + LR and NBSVM on stratified,
seeded draws of increasing size, all scored on the same rows; writes a Markdown table, a plot and JSON
(benchmarks/learning_curve.py):

    $ python scripts/benchmark_accuracy.py --learning-curve reviews.csv                     # 250, 500, 1,000, 2,000, all
    $ python scripts/benchmark_accuracy.py --learning-curve data/ --sizes 100 300 all --seeds 1 2 --init-from owner/name

Training options of the train command pass through over the recipe to every GRU run; --validation-rows N scores on
N rows carved from the pool instead of DATA's test split, --starts the GRU runs to train (to try a recipe):

    $ python scripts/benchmark_accuracy.py --learning-curve data/ --validation-rows 500 --starts fine_tuned --learning-rate 2e-3

With --domains, leaves each rated domain of the english-6-domains corpus out of training in turn and scores it:
negative-vs-positive accuracy and three-class macro-recall of the GRU, VADER and TF-IDF + LR trained on the same
rows; --in-domain adds one model trained on every domain. Training options pass through to each run; writes a
Markdown table and JSON (benchmarks/domains.py):

    $ python scripts/benchmark_accuracy.py --domains                                      # 3 seeds, the default options
    $ python scripts/benchmark_accuracy.py --domains --in-domain --seeds 13 --preset snippets
    $ python scripts/benchmark_accuracy.py --domains --seeds 1 --epochs 1 --hidden-size 16 --max-train-rows 500  # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import accuracy as accuracy_benchmark
from benchmarks import domains as domain_benchmark
from benchmarks import encoder_speed
from benchmarks import learning_curve
from sentiment_gru.cli import training_options
from sentiment_gru.errors import EXIT_USER_ERROR, UserError

DOMAINS_PROG = "benchmark_accuracy.py --domains"
CURVE_PROG = "benchmark_accuracy.py --learning-curve"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(accuracy_benchmark.BENCHMARKS),
                        help="default: default and sst2, and imdb when --imdb is given")
    # Ensemble members take consecutive seeds (seed, seed + 1, ...), so the runs' seeds are 100 apart.
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 113, 213], help="one GRU run per seed")
    parser.add_argument("--sst2", default="stanfordnlp/sst2",
                        help="SST-2: a folder with train.* and validation.* files (text,label), or a hub name")
    parser.add_argument("--imdb", help="IMDB: a folder with train.csv (text,label); adds the imdb row")
    parser.add_argument("--sst2-distill-file", help="unlabelled sentences for the SST-2 student (--distill-file), in place of its "
                                                    "made-up variants (--distill-copies 0); make them with scripts/sentences.py")
    parser.add_argument("--keep-models", type=Path, metavar="DIR",
                        help="keep each run's model folder as DIR/<dataset>-seed<S> (with --domains, "
                             "DIR/left_out-<domain>-seed<S> and DIR/in_domain-all-seed<S>; default: thrown away)")
    parser.add_argument("--output", type=Path, help="the JSON file to write (default: artifacts/benchmark_accuracy.json; "
                                                     "with --learning-curve, learning_curve/learning_curve.json, with .md and "
                                                     ".png beside it; with --domains, artifacts/benchmark_domains.json, with "
                                                     ".md beside it)")
    curve = parser.add_argument_group("learning curve")
    curve.add_argument("--learning-curve", metavar="DATA", help="a data file, or a folder with train.*, validation.* and test.* files")
    curve.add_argument("--sizes", nargs="+", default=["250", "500", "1000", "2000", "all"],
                       help="training-set sizes, 'all' for the whole pool (default: %(default)s)")
    curve.add_argument("--init-from", help="the parent model: a model folder or a hub id (default: artifacts/ when it holds a model)")
    curve.add_argument("--no-parent", action="store_true", help="no GRU started from a parent")
    curve.add_argument("--label-names", help="comma-separated names for integer labels 0..n-1, e.g. negative,positive")
    curve.add_argument("--validation-rows", type=int, metavar="N",
                       help="score on N rows carved from the pool (seeded), not DATA's test split: to choose a recipe "
                            "without looking at the rows a curve reports")
    curve.add_argument("--starts", nargs="+", choices=learning_curve.STARTS, default=list(learning_curve.STARTS),
                       help="the GRU runs to train: from scratch, from word vectors, from the parent (default: all)")
    domains = parser.add_argument_group("leave one domain out (any option of the train command, e.g. --preset, --epochs, "
                                        "--max-train-rows, passes through to each run)")
    domains.add_argument("--domains", action="store_true", help="train without each rated domain of the english-6-domains "
                                                                 "corpus in turn and score it, beside VADER and TF-IDF + LR")
    domains.add_argument("--in-domain", action="store_true", help="with --domains, also score each domain with one model trained on all")
    args, rest = parser.parse_known_args(argv)
    if rest and not (args.domains or args.learning_curve):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.in_domain and not args.domains:
        parser.error("--in-domain goes with --domains.")
    args.preset, args.data_options, args.sections = None, {}, {}
    if args.domains:
        if args.learning_curve or args.init_from:
            parser.error("--domains trains from scratch on the english-6-domains corpus: drop --learning-curve and --init-from.")
        args.preset, args.data_options, args.sections = training_options(rest, prog=DOMAINS_PROG)
        other = sorted(set(args.data_options) - {"max_train_rows"})
        if other:
            parser.error(f"--domains trains on the english-6-domains corpus: drop {', '.join('--' + n.replace('_', '-') for n in other)}.")
    if args.learning_curve:  # training options to try over the recipe, in every GRU run
        preset, data_options, args.sections = training_options(rest, prog=CURVE_PROG)
        if preset is not None or data_options:
            given = ["--preset"] * (preset is not None) + ["--" + n.replace("_", "-") for n in data_options]
            parser.error(f"--learning-curve takes its data from DATA and its options from the recipe and the training "
                         f"options given: drop {', '.join(given)}.")
    elif args.validation_rows is not None or args.starts != list(learning_curve.STARTS):
        parser.error("--validation-rows and --starts go with --learning-curve.")
    args.datasets = args.datasets or ["default", "sst2"] + (["imdb"] if args.imdb else [])
    if args.output is None:
        args.output = Path("learning_curve/learning_curve.json" if args.learning_curve else
                           "artifacts/benchmark_domains.json" if args.domains else "artifacts/benchmark_accuracy.json")
    try:
        args.sizes = [None if size == "all" else int(size) for size in args.sizes]
    except ValueError:
        parser.error(f"--sizes takes whole numbers or 'all'. Got {' '.join(args.sizes)}.")
    if args.learning_curve and args.init_from is None and not args.no_parent and (Path("artifacts") / "config.json").is_file():
        args.init_from = "artifacts"
    if args.learning_curve and args.starts == ["fine_tuned"] and (args.no_parent or args.init_from is None):
        parser.error("--starts fine_tuned trains from a parent: give --init-from DIR|owner/name (and drop --no-parent).")
    return args


def _learning_curve(args: argparse.Namespace) -> dict:
    """Run the learning curve; print its table; write the table and the plot beside the JSON file."""
    names = tuple(args.label_names.split(",")) if args.label_names else None
    results = learning_curve.run(learning_curve.data_config(args.learning_curve, names), args.sizes, args.seeds,
                                 init_from=None if args.no_parent else args.init_from, overrides=args.sections,
                                 validation_rows=args.validation_rows, starts=tuple(args.starts))
    table = learning_curve.format_table(results)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    learning_curve.plot(results, args.output.with_suffix(".png"))
    return results


def _domains(args: argparse.Namespace) -> dict:
    """Run the leave-one-domain-out benchmark; print its table; write the table beside the JSON file."""
    results = domain_benchmark.run(args.seeds, preset=args.preset, sections=args.sections, data_options=args.data_options,
                                   in_domain=args.in_domain, keep_models=args.keep_models)
    table = domain_benchmark.format_table(results)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import datasets

    datasets.disable_progress_bars()  # the epoch lines are the progress worth reading here
    try:
        if args.learning_curve:
            results = _learning_curve(args)
        elif args.domains:
            results = _domains(args)
        else:
            results = accuracy_benchmark.run(args.datasets, args.seeds, args.sst2, imdb=args.imdb,
                                               sst2_distill_file=args.sst2_distill_file, keep_models=args.keep_models)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not args.learning_curve and not args.domains:
        print(accuracy_benchmark.format_table(results))
        for name, r in results.items():
            print(f"{name}: GRU - baseline = {r['gain_over_baseline_points']:+.2f} points (mean over {len(r['runs'])} seeds)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "environment": encoder_speed.environment(), "results": results}
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
