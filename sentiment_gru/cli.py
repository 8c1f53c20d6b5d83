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

from .errors import EXIT_USER_ERROR, ConfigError, TrainingInterrupted, command, run_command

DEFAULT_ARTIFACTS = "artifacts"
PREVIEW_CHARS = 80  # of each text predict prints


def _run(command, argv, parser: argparse.ArgumentParser) -> int:
    args = parser.parse_args(argv)
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    if os.environ.get("RANK", "0") != "0":
        level = logging.ERROR  # started by torchrun: rank 0 alone logs
    logging.basicConfig(level=level, format="%(message)s", force=True)
    try:
        return run_command(command, args)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted: nothing was saved; the previous model, if any, is unchanged.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output stopped early (`| head`): no traceback, and none at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its read errors reach the user as our one-line error


# ---------------------------------------------------------------- options built from the config dataclasses


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(","))


def _add_options(group, cls: type, where: str) -> dict[str, str]:
    """Add an option for each field of `cls` that its `option()` puts on the command line at `where` ("source" for
    every command, "train" for train only); return option dest -> field name."""
    import dataclasses

    added = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli") or (meta["cli"] is not True and meta["cli"] != where):
            continue
        flag = meta["flag"] or f.name
        default = f.default
        kwargs: dict = {"dest": flag}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
            shown = "on" if default else "off"
        elif isinstance(default, tuple) or "tuple" in str(f.type):
            kwargs["type"] = _comma_list
            shown = ",".join(default) if default else None
        else:
            kwargs["type"] = type(default) if default is not None else str
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
            shown = default
        help_text = meta["help"].replace("%", "%%")
        kwargs["help"] = help_text + (f" (default: {shown})" if shown is not None else "")
        group.add_argument(f"--{flag.replace('_', '-')}", **kwargs)
        added[flag] = f.name
    return added


def _given(args: argparse.Namespace, options: dict[str, str]) -> dict:
    """The fields whose options were given on the command line, as field name -> value."""
    return {name: getattr(args, dest) for dest, name in options.items() if getattr(args, dest, None) is not None}


def add_data_arguments(parser: argparse.ArgumentParser, where: str = "source") -> None:
    from .config import DataConfig

    group = parser.add_argument_group("data (default: the Rotten Tomatoes snippets corpus)")
    parser.set_defaults(data_options=_add_options(group, DataConfig, where))


def data_config_from(args: argparse.Namespace, seed: int = 13):
    from .config import build_data_config

    return build_data_config(_given(args, args.data_options), seed=seed)


def _gave_data(args: argparse.Namespace) -> bool:
    return bool(_given(args, args.data_options))


# ---------------------------------------------------------------- train


def train_parser() -> argparse.ArgumentParser:
    from .config import PRESET_HELP, ModelConfig, TokenizerConfig, TrainConfig

    parser = argparse.ArgumentParser(
        prog="train", description="Train a bidirectional GRU sentiment classifier. Defaults shown are those without --preset.",
    )
    add_data_arguments(parser, where="train")
    parser.add_argument("--preset", choices=list(PRESET_HELP),
                        help="start from the settings for a dataset family: " + ", ".join(f"{k} ({v})" for k, v in PRESET_HELP.items()))
    sections = {}
    for section, cls in (("tokenizer", TokenizerConfig), ("model", ModelConfig), ("train", TrainConfig)):
        sections[section] = _add_options(parser.add_argument_group(section), cls, "train")
    parser.set_defaults(config_options=sections)
    parser.add_argument("--output-dir", default=DEFAULT_ARTIFACTS, help="model folder to write (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue an interrupted run from OUTPUT-DIR.checkpoint/ (give the same options)")
    parser.add_argument("--quiet", action="store_true", default=False, help="only warnings and the final summary")
    return parser


def run_config_from(args: argparse.Namespace):
    """The run configuration: defaults, then --preset, then the architecture of the --init-from model, then the options given."""
    from .config import TrainConfig, build_run_config

    sections = {section: _given(args, options) for section, options in args.config_options.items()}
    seed = sections["train"].get("seed", TrainConfig().seed)
    parent = None
    if sections["train"].get("init_from") is not None:
        from .runs import parent_config

        parent = parent_config(sections["train"]["init_from"])
    return build_run_config(data_config_from(args, seed=seed), preset=args.preset, parent=parent, **sections)


def training_options(argv: list[str], prog: str = "train") -> tuple[str | None, dict, dict[str, dict]]:
    """The train command's options in `argv`, for a script that runs training itself: --preset, the data options given
    (field name -> value) and the configuration sections given (section -> field name -> value). A bad option exits
    with argparse's message, `prog` naming the command."""
    parser = train_parser()
    parser.prog = prog
    args = parser.parse_args(argv)
    return args.preset, _given(args, args.data_options), {section: _given(args, options) for section, options in args.config_options.items()}


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

        again = " ".join([command("train"), shlex.join([*(a for a in args.argv if a != "--resume"), "--resume"])])
        raise TrainingInterrupted(
            f"{exc} The previous model in {args.output_dir}/, if any, is unchanged. Resume with: {again}", exc.exit_status - 128
        ) from None
    print(metrics["report"])
    print(f"model written to {args.output_dir}/ — predict with: {command('predict')} --artifacts {args.output_dir} \"some text\"")
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
    _add_backend(parser)
    parser.add_argument("--quiet", action="store_true", help="only warnings and the report")
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from .runs import evaluate_saved

    _quiet_datasets()
    data_config = data_config_from(args) if _gave_data(args) else None
    metrics, out = evaluate_saved(args.artifacts, data_config, args.split, args.output_dir, baseline=not args.no_baseline,
                                  backend=args.backend)
    print(metrics["report"])
    print(f"reports written to {out}/ — read {out}/report.html")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    return _run(_evaluate, argv, evaluate_parser())


# ---------------------------------------------------------------- compare


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compare", description="Compare two trained models on the same split: accuracy, "
                                                                 "macro-F1, a paired bootstrap of the difference and McNemar's test.")
    parser.add_argument("dir_a", metavar="DIR_A", help="first model folder")
    parser.add_argument("dir_b", metavar="DIR_B", help="second model folder")
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("train", "validation", "test"), help="split to score (default: test, else the first given)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_backend(parser)
    parser.set_defaults(quiet=True)  # warnings only: the comparison is the output
    return parser


def _compare(args: argparse.Namespace) -> int:
    from .evaluate.report import format_comparison
    from .runs import compare_saved

    _quiet_datasets()
    result = compare_saved(args.dir_a, args.dir_b, data_config_from(args) if _gave_data(args) else None, args.split, args.backend)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    return _run(_compare, argv, compare_parser())


# ---------------------------------------------------------------- export


def export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export", description="Write model.onnx into a model folder, so predict runs on "
                                                                "onnxruntime without torch (pip install 'sentiment-gru[onnx]').")
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, help="trained model folder (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the result line")
    return parser


def _export(args: argparse.Namespace) -> int:
    import time

    from .inference.export import export_folder

    started = time.perf_counter()
    path = export_folder(args.artifacts)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {time.perf_counter() - started:.1f} s) — "
          f"predict without torch: {command('predict')} --artifacts {args.artifacts} --backend onnx \"some text\"")
    return 0


def export_main(argv: list[str] | None = None) -> int:
    return _run(_export, argv, export_parser())


# ---------------------------------------------------------------- predict


def _add_backend(parser: argparse.ArgumentParser) -> None:
    from .inference.backends import BACKEND_CHOICES, BACKEND_HELP

    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=f"{BACKEND_HELP} (default: %(default)s)")


def predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict", description="Label raw texts with a trained model. Prints one line per text: label, probability, text; "
                                    "or, with --output, writes every row of --file with its prediction added."
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="texts to classify; '-' (or no TEXT, with texts piped in) reads one text per line from stdin")
    parser.add_argument("--file", help="one text per line, or a .csv/.tsv/.json/.jsonl/.parquet file with --text-column; '-' for stdin")
    parser.add_argument("--text-column", help="text column of a table file (detected: text, sentence, review, content)")
    parser.add_argument("--output", metavar="FILE",
                        help="write each input row, every column kept, with predicted_label, predicted_score, predicted_score_LABEL "
                             "for each label and predicted_truncated added, to FILE: .csv, .tsv, .jsonl or .parquet (by its suffix)")
    parser.add_argument("--artifacts", default=DEFAULT_ARTIFACTS, help="trained model folder (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="JSON Lines with every class probability")
    parser.add_argument("--batch-size", type=int, default=256, help="texts per forward pass (default: %(default)s)")
    _add_backend(parser)
    parser.add_argument("--explain", action="store_true",
                        help="mark the words that move the prediction most, [+word] for and [-word] against it "
                             "(occlusion: one extra forward pass per token); with --json, add an \"explanation\" list")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress lines while reading --file")
    return parser


def _stdin_piped() -> bool:
    """Whether texts may be waiting on stdin: it is a pipe or a file, not a terminal."""
    try:
        return not sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):  # closed, or replaced by something that is not a file
        return False


def _predict(args: argparse.Namespace) -> int:
    from .config import MAX_BATCH_SIZE
    from .data.tables import output_format, read_rows, rows_of_texts, shorten
    from .inference.bulk import Progress, score_file
    from .inference.classifier import SentimentClassifier

    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}. Got {args.batch_size}.")
    piped = args.file is None and not args.texts and _stdin_piped()
    if args.file is None and not args.texts and not piped:
        raise ConfigError("Nothing to predict. Give texts, '-' for stdin, or --file F.")
    if args.file is not None and args.texts:
        raise ConfigError("Give texts or --file, not both.")
    if args.output is not None:
        output_format(args.output)
        for flag, given in (("--explain", args.explain), ("--json", args.json)):
            if given:
                raise ConfigError(f"--output writes a file in the format its suffix names; {flag} is for printed output. Leave one out.")
    predictor = SentimentClassifier.from_pretrained(args.artifacts, backend=args.backend)
    if args.file is not None:
        rows = read_rows(args.file, args.text_column, keep_columns=args.output is not None)
    elif args.texts == ["-"] or piped:
        rows = read_rows("-", None)
    else:
        rows = rows_of_texts(args.texts)
    out = sys.stdout
    if args.explain:
        return _explain(predictor, (text for chunk in rows.chunks for text in chunk.texts), args.json, out)
    progress = False if args.quiet or args.file is None else None
    if args.output:
        print(score_file(predictor, rows, args.output, args.batch_size, progress).summary(args.output), file=sys.stderr)
        return 0
    width = PREVIEW_CHARS if out.isatty() else None  # on a terminal, each text shortened to a line; else whole
    texts = cut = 0
    for chunk in Progress(rows.total, False if out.isatty() else progress).track(rows.chunks):
        for text, result in zip(chunk.texts, predictor.predict(chunk.texts, args.batch_size)):
            _write(out, text, result, args.json, shorten(text, width))
            cut += "truncated" in result
        texts += len(chunk.texts)
    out.flush()
    if piped and not texts:
        raise ConfigError("Nothing to predict: stdin was empty. Give texts, or --file F.")
    if cut:
        print(f"note: {cut:,} of {texts:,} texts were longer than the model reads ({predictor.encoder.read_length} tokens) and only "
              "part of each was read; --json marks them \"truncated\": true.", file=sys.stderr)
    return 0


def _write(out, text: str, result: dict, as_json: bool, shown: str) -> None:
    """One output line: JSON Lines, or label, probability and the text as `shown`."""
    if as_json:
        out.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    elif result["label"] is None:
        out.write(f"-\t-\t({result['error']}: no prediction)\n")
    else:
        out.write(f"{result['label']}\t{result['score']:.4f}\t{shown}\n")


def _explain(predictor, texts, as_json: bool, out) -> int:
    from .inference.explain import mark

    colour = out.isatty()
    for text in texts:
        result = predictor.explain_details(text)
        shown = "" if as_json or result["label"] is None else mark(text, result["explanation"], colour=colour)
        result["explanation"] = [{"token": t["token"], "score": t["score"]} for t in result["explanation"]]
        _write(out, text, result, as_json, shown)
    out.flush()
    return 0


def predict_main(argv: list[str] | None = None) -> int:
    return _run(_predict, argv, predict_parser())


# ---------------------------------------------------------------- one command for all


def serve_main(argv: list[str] | None = None) -> int:
    from .serve.command import serve_main as serve

    return serve(argv)


COMMANDS = {
    "train": ("train a model folder", train_main),
    "evaluate": ("score a model folder on a split or a file; write its reports", evaluate_main),
    "predict": ("label texts", predict_main),
    "compare": ("two model folders on the same split", compare_main),
    "export": ("write model.onnx into a model folder", export_main),
    "serve": ("serve a model folder over HTTP", serve_main),
}


def main(argv: list[str] | None = None) -> int:
    """`sentiment-gru COMMAND ...`: the commands above under one name (`sentiment-gru serve --artifacts DIR`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: sentiment-gru COMMAND [options]   (sentiment-gru COMMAND --help for its options)\n\ncommands:")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:<10}{text}")
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return EXIT_USER_ERROR
    return COMMANDS[argv[0]][1](argv[1:])
