"""Benchmark the BiGRU encoder (packed reference vs fast path), one training epoch, or prediction through the API.

Throughput table (training = forward + backward, inference = no_grad forward;
batch 64, lengths uniform in [max/2, max], E = H = 128, 2 layers, bidirectional):

    $ python scripts/benchmark.py --threads 1
    $ python scripts/benchmark.py --lengths 32 256 --repeats 5 --output artifacts/bench.json

One training epoch (25,000 random-token texts with IMDB-like lengths, AdamW; the encoder training would use on
the device: the fast path on the CPU, cuDNN on a GPU):

    $ python scripts/benchmark.py --epoch --threads 1

Prediction throughput through the Python API (the default corpus's test texts repeated 16 times): an
ensemble on torch, the shipped model on torch and on its default backend, and the TF-IDF baseline:

    $ python scripts/benchmark.py --inference --artifacts artifacts --ensemble-artifacts ensemble-model
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import encoder_speed as benchmark
from benchmarks import inference
from sentiment_gru.config import PRECISIONS
from sentiment_gru.errors import EXIT_USER_ERROR, UserError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 256, 512], help="max lengths")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--epoch", action="store_true", help="time one training epoch instead")
    parser.add_argument("--inference", action="store_true",
                        help="prediction throughput through the Python API on the default corpus's test texts instead: "
                             "--artifacts on each backend, --ensemble-artifacts on torch, and the TF-IDF baseline")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="for --inference: the shipped model folder")
    parser.add_argument("--ensemble-artifacts", type=Path, help="for --inference: an ensemble's model folder (--preset snippets --no-distill)")
    parser.add_argument("--repeat", type=int, default=16, help="for --inference: times the 1,276 test texts are repeated")
    parser.add_argument("--epoch-texts", type=int, default=25_000, help="texts in the epoch")
    parser.add_argument("--impl", default="auto", choices=["auto", "fast", "packed"],
                        help="encoder for --epoch (auto: as training picks it, fast on the CPU and packed/cuDNN on a GPU)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="training precision for --epoch (auto: fp32, as training does)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON file (default artifacts/benchmark.json, or artifacts/benchmark_epoch.json)")
    return parser.parse_args(argv)


def _members(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["model"]["ensemble_size"]


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        threads = benchmark.set_threads(args.threads)
        if args.inference:
            models = [(f"ensemble of {_members(args.ensemble_artifacts)} (torch)", args.ensemble_artifacts, "torch")] if args.ensemble_artifacts else []
            models += [("shipped model, torch", args.artifacts, "torch"), ("shipped model, default backend", args.artifacts, "auto")]
            result = inference.inference_throughput(models, repeat=args.repeat)
            print(inference.format_inference(result))
            default_output = "artifacts/benchmark_inference.json"
        elif args.epoch:
            result = benchmark.training_epoch(
                num_texts=args.epoch_texts, batch_size=args.batch_size, impl=args.impl, device=args.device,
                precision=args.precision,
            )
            print(benchmark.format_epoch(result))
            default_output = "artifacts/benchmark_epoch.json"
        else:
            result = benchmark.encoder_throughput(
                lengths=args.lengths, batch_size=args.batch_size, repeats=args.repeats, device=args.device
            )
            print(f"threads: {threads}")
            print(benchmark.format_table(result))
            default_output = "artifacts/benchmark.json"
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    output = args.output or Path(default_output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "environment": benchmark.environment(), "result": result}
    output.write_text(json.dumps(report, indent=2))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
