"""Command-line front ends of train, evaluate and predict.

Each `*_main(argv)` parses arguments, runs one function of the package and
returns an exit status: 0 on success, 2 on a user error (one line on stderr).
Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import EXIT_USER_ERROR, ConfigError, DataError, TrainingInterrupted, UserError

DEFAULT_ARTIFACTS = "artifacts"


def _run(command, argv, parser: argparse.ArgumentParser) -> int:
    args = parser.parse_args(argv)
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    if os.environ.get("RANK", "0") != "0":
        level = logging.ERROR  # started by torchrun: rank 0 alone logs
    logging.basicConfig(level=level, format="%(message)s", force=True)
    try:
        return command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted: nothing was saved; the previous model, if any, is unchanged.", file=sys.stderr)
        return 130


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its read errors reach the user as our one-line error


# ---------------------------------------------------------------- data flags


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (default: the Rotten Tomatoes snippets corpus)")
    group.add_argument("--dataset", help="Hugging Face hub dataset name (imdb, stanfordnlp/sst2, ...) or a local dataset folder")
    group.add_argument("--dataset-config", help="configuration name of a hub dataset")
    group.add_argument("--train-file", help="training data: CSV, TSV, JSON, JSON Lines or Parquet")
    group.add_argument("--validation-file", help="validation data (default: 10%% of train, stratified)")
    group.add_argument("--test-file", help="test data (default: none; reports use validation)")
    group.add_argument("--text-column", help="text column (detected: text, sentence, review, content)")
    group.add_argument("--label-column", help="label column (detected: label, labels, sentiment)")
    group.add_argument("--label-names", help="comma-separated names for integer labels 0..n-1, e.g. negative,positive")


def data_config_from(args: argparse.Namespace, seed: int = 13):
    from .config import DataConfig

    names = tuple(n.strip() for n in args.label_names.split(",")) if args.label_names else None
    streaming = {"streaming": True} if getattr(args, "streaming", False) else {}
    if getattr(args, "stream_sample_size", None) is not None:
        if not streaming:
            raise ConfigError("--stream-sample-size only applies with --streaming. Add --streaming or drop it.")
        streaming["stream_sample_size"] = args.stream_sample_size
    return DataConfig(
        dataset=args.dataset, dataset_config=args.dataset_config, train_file=args.train_file,
        validation_file=args.validation_file, test_file=args.test_file, text_column=args.text_column,
        label_column=args.label_column, label_names=names, seed=seed, **streaming,
    )


def _gave_data(args: argparse.Namespace) -> bool:
    return any(getattr(args, k) for k in ("dataset", "train_file", "validation_file", "test_file", "text_column", "label_column", "label_names"))


# ---------------------------------------------------------------- train


# train.py option -> (configuration section, field); options left out keep the preset's or the default value
TRAIN_OPTIONS = {
    "tokenizer": ("tokenizer", "kind"), "vocab_size": ("tokenizer", "vocab_size"), "max_length": ("tokenizer", "max_length"),
    "lexicon": ("tokenizer", "lexicon"),
    "embedding_dim": ("model", "embedding_dim"), "hidden_size": ("model", "hidden_size"), "num_layers": ("model", "num_layers"),
    "dropout": ("model", "dropout"), "embedding_dropout": ("model", "embedding_dropout"), "pooling": ("model", "pooling"),
    "ensemble": ("model", "ensemble_size"), "gru_impl": ("model", "gru_impl"),
    "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
    "weight_decay": ("train", "weight_decay"), "label_smoothing": ("train", "label_smoothing"), "patience": ("train", "patience"),
    "seed": ("train", "seed"), "device": ("train", "device"), "num_proc": ("train", "num_proc"),
    "precision": ("train", "precision"),
}


def train_parser() -> argparse.ArgumentParser:
    from .config import GRU_IMPLS, POOLING_CHOICES, PRESETS, TOKENIZER_KINDS, DataConfig, ModelConfig, TokenizerConfig, TrainConfig

    m, t, k = ModelConfig(), TrainConfig(), TokenizerConfig()
    parser = argparse.ArgumentParser(
        prog="train", description="Train a bidirectional GRU sentiment classifier. Defaults shown are those without --preset.",
        argument_default=None,
    )
    add_data_arguments(parser)
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="start from the settings for a dataset family: snippets (short reviews), treebank (SST-2), reviews (IMDB)")
    g = parser.add_argument_group("tokenizer")
    g.add_argument("--tokenizer", choices=TOKENIZER_KINDS, help=f"subword model (default: {k.kind})")
    g.add_argument("--vocab-size", type=int, help=f"largest vocabulary (default: {k.vocab_size})")
    g.add_argument("--max-length", type=int, help=f"tokens kept per text (default: {k.max_length})")
    g.add_argument("--lexicon", action=argparse.BooleanOptionalAction,
                   help="English lexicon words as tokens, with Roget/General Inquirer/Whissell category vectors "
                        f"(default: {'on' if k.lexicon else 'off'}; on in the snippets and treebank presets)")
    g = parser.add_argument_group("model")
    g.add_argument("--embedding-dim", type=int, help=f"(default: {m.embedding_dim})")
    g.add_argument("--hidden-size", type=int, help=f"GRU state per direction (default: {m.hidden_size})")
    g.add_argument("--num-layers", type=int, help=f"bidirectional GRU layers (default: {m.num_layers})")
    g.add_argument("--dropout", type=float, help=f"(default: {m.dropout})")
    g.add_argument("--embedding-dropout", type=float, help=f"token dropout (default: {m.embedding_dropout})")
    g.add_argument("--pooling", help=f"comma-separated, from {', '.join(POOLING_CHOICES)} (default: {','.join(m.pooling)})")
    g.add_argument("--ensemble", type=int,
                   help=f"train this many classifiers from consecutive seeds and average their probabilities (default: {m.ensemble_size})")
    g.add_argument("--gru-impl", choices=GRU_IMPLS,
                   help="packed: nn.GRU on a PackedSequence; fast: same result, faster CPU training; "
                        "auto (default): fast for CPU training, packed otherwise")
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"(default: {t.epochs})")
    g.add_argument("--batch-size", type=int, help=f"(default: {t.batch_size})")
    g.add_argument("--learning-rate", type=float, help=f"peak AdamW learning rate (default: {t.learning_rate})")
    g.add_argument("--weight-decay", type=float, help=f"(default: {t.weight_decay})")
    g.add_argument("--label-smoothing", type=float, help=f"(default: {t.label_smoothing})")
    g.add_argument("--patience", type=int, help=f"epochs without validation gain before stopping (default: {t.patience})")
    g.add_argument("--seed", type=int, help=f"(default: {t.seed})")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help=f"(default: {t.device})")
    g.add_argument("--num-proc", type=int, help=f"processes that tokenize the data (datasets.map; default: {t.num_proc})")
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="fp32, or bf16 mixed precision (autocast; the GRU recurrence stays fp32 on the CPU); "
                        f"auto: bf16 on GPUs that support it, fp32 on the CPU (default: {t.precision})")
    g = parser.add_argument_group("large corpora (see README, Scaling; several processes: start with torchrun)")
    g.add_argument("--streaming", action="store_true", default=False,
                   help="read the train split as a stream, never whole: the tokenizer learns from a sample, validation is held in memory")
    g.add_argument("--stream-sample-size", type=int,
                   help=f"with --streaming: texts from the start of the stream the tokenizer learns from (default: {DataConfig().stream_sample_size})")
    parser.add_argument("--output-dir", default=DEFAULT_ARTIFACTS, help="model folder to write (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue an interrupted run from OUTPUT-DIR.checkpoint/ (give the same options)")
    parser.add_argument("--quiet", action="store_true", default=False, help="only warnings and the final summary")
    return parser


def run_config_from(args: argparse.Namespace):
    """The run configuration: defaults, then --preset, then the options given."""
    from .config import TrainConfig, build_run_config

    sections: dict[str, dict] = {"tokenizer": {}, "model": {}, "train": {}}
    for option, (section, name) in TRAIN_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            sections[section][name] = tuple(p.strip() for p in value.split(",")) if option == "pooling" else value
    seed = args.seed if args.seed is not None else TrainConfig().seed
    return build_run_config(data_config_from(args, seed=seed), preset=args.preset, **sections)


def _train(args: argparse.Namespace) -> int:
    from .runs import train_and_save

    _quiet_datasets()
    config = run_config_from(args)
    try:
        metrics = train_and_save(config, args.output_dir, progress=None if not args.quiet else False, resume=args.resume)
        if metrics is None:  # another process than rank 0 of a torchrun run: rank 0 reports
            return 0
    except TrainingInterrupted as exc:
        import shlex

        again = shlex.join(["python", "scripts/train.py", *(a for a in args.argv if a != "--resume"), "--resume"])
        raise TrainingInterrupted(
            f"{exc} The previous model in {args.output_dir}/, if any, is unchanged. Resume with: {again}", exc.exit_status - 128
        ) from None
    print(metrics["report"])
    print(f"model written to {args.output_dir}/ — predict with: python scripts/predict.py --artifacts {args.output_dir} \"some text\"")
    return 0


def train_main(argv: list[str] | None = None) -> int:
    parser = train_parser()
    parser.set_defaults(argv=list(sys.argv[1:] if argv is None else argv))  # for the resume hint
    return _run(_train, argv, parser)


# ---------------------------------------------------------------- evaluate


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate", description="Evaluate a trained model on a split of its own data, or on other data given by the data flags."
    )
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, help="trained model folder (default: %(default)s)")
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("train", "validation", "test"), help="split to score (default: test, else the first given)")
    parser.add_argument("--output-dir", help="folder for the reports (default: ARTIFACTS/evaluation/SPLIT)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic-regression comparison")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the report")
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from .runs import evaluate_saved

    _quiet_datasets()
    data_config = data_config_from(args) if _gave_data(args) else None
    metrics, out = evaluate_saved(args.artifacts, data_config, args.split, args.output_dir, baseline=not args.no_baseline)
    print(metrics["report"])
    print(f"reports written to {out}/ — read {out}/report.html")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    return _run(_evaluate, argv, evaluate_parser())


# ---------------------------------------------------------------- predict


def predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict", description="Label raw texts with a trained model. Prints one line per text: label, probability, text."
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify; '-' reads one text per line from stdin")
    parser.add_argument("--file", help="one text per line, or a .csv/.tsv/.json/.jsonl/.parquet file with --text-column; '-' for stdin")
    parser.add_argument("--text-column", help="text column of a table file (detected: text, sentence, review, content)")
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, help="trained model folder (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="JSON Lines with every class probability")
    parser.add_argument("--batch-size", type=int, default=256, help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--explain", action="store_true",
                        help="mark the words that move the prediction most, [+word] for and [-word] against it "
                             "(occlusion: one extra forward pass per token); with --json, add an \"explanation\" list")
    return parser


def _predict(args: argparse.Namespace) -> int:
    from .config import MAX_BATCH_SIZE
    from .predict import Predictor

    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}. Got {args.batch_size}.")
    if args.file is None and not args.texts:
        raise ConfigError("Nothing to predict. Give texts, '-' for stdin, or --file F.")
    if args.file is not None and args.texts:
        raise ConfigError("Give texts or --file, not both.")
    predictor = Predictor.from_artifacts(args.artifacts)
    if args.file is not None:
        texts = read_texts(args.file, args.text_column)
    elif args.texts == ["-"]:
        texts = (line.rstrip("\r\n") for line in sys.stdin)
    else:
        texts = iter(args.texts)
    out = sys.stdout
    if args.explain:
        return _explain(predictor, texts, args.json, out)
    for text, result in predictor.predict_stream(texts, batch_size=args.batch_size):
        _write(out, text, result, args.json, _preview(text))
    out.flush()
    return 0


def _write(out, text: str, result: dict, as_json: bool, shown: str) -> None:
    """One output line: JSON Lines, or label, probability and the text as `shown`."""
    if as_json:
        out.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    elif result["label"] is None:
        out.write(f"-\t-\t({result['error']}: no prediction)\n")
    else:
        out.write(f"{result['label']}\t{result['probability']:.4f}\t{shown}\n")


def _explain(predictor, texts, as_json: bool, out) -> int:
    from .explain import explain, mark

    colour = out.isatty()
    for text in texts:
        result = explain(predictor, text)
        shown = "" if as_json or result["label"] is None else mark(text, result["explanation"], colour=colour)
        result["explanation"] = [{"token": t["token"], "score": t["score"]} for t in result["explanation"]]
        _write(out, text, result, as_json, shown)
    out.flush()
    return 0


def _preview(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def read_texts(path: str, text_column: str | None) -> Iterator[str]:
    """Texts of a file, lazily: plain lines, or one column of a CSV/TSV/JSON/JSON Lines/Parquet table."""
    from .data import TEXT_CANDIDATES, detect_column

    if path == "-":
        return (line.rstrip("\r\n") for line in sys.stdin)
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--file {path}: no such file.")
    suffix = file.suffix.lower()
    if suffix in (".csv", ".tsv"):
        import csv

        handle = open(file, newline="", encoding="utf-8")
        reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
        column = detect_column(reader.fieldnames or [], text_column, TEXT_CANDIDATES, "text", f"--file {path}")
        return (row[column] or "" for row in reader)
    if suffix in (".jsonl", ".json"):
        return _json_texts(file, text_column)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(file)
        column = detect_column(table.schema_arrow.names, text_column, TEXT_CANDIDATES, "text", f"--file {path}")
        return (t or "" for batch in table.iter_batches(columns=[column]) for t in batch.column(0).to_pylist())
    if text_column is not None:
        raise ConfigError(f"--text-column needs a table file (.csv, .tsv, .json, .jsonl, .parquet); {path} is read as plain lines.")
    return (line.rstrip("\r\n") for line in open(file, encoding="utf-8", errors="replace"))


def _json_texts(file: Path, text_column: str | None) -> Iterator[str]:
    from .data import TEXT_CANDIDATES, detect_column

    with open(file, encoding="utf-8") as handle:
        first = handle.read(1)
        handle.seek(0)
        try:
            rows = json.load(handle) if first == "[" else (json.loads(line) for line in handle if line.strip())
            column = None
            for number, row in enumerate(rows, start=1):
                if not isinstance(row, dict):
                    raise DataError(f"--file {file}: record {number} is not a JSON object.")
                if column is None:
                    column = detect_column(list(row), text_column, TEXT_CANDIDATES, "text", f"--file {file}")
                value = row.get(column)
                yield value if isinstance(value, str) else ""
        except json.JSONDecodeError as exc:
            raise DataError(f"--file {file}: not valid JSON ({exc}).") from None


def predict_main(argv: list[str] | None = None) -> int:
    return _run(_predict, argv, predict_parser())
