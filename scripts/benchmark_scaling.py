"""Scaling measurements for the README: processes against threads on SST-2, and streaming memory.

    $ python scripts/benchmark_scaling.py throughput --train-file ../shared/data/sst2/train.csv \
          --validation-file ../shared/data/sst2/validation.csv --layouts 1x2 2x1 --output scaling.json
    $ python scripts/benchmark_scaling.py streaming-memory --lines 2000000 --output streaming.json
    $ python scripts/benchmark_scaling.py throughput ... --layouts 1x8 --device cuda --torchrun   # one GPU through torchrun

`throughput` trains one epoch per layout (PROCESSESxTHREADS; several processes run
under torchrun with gloo, or NCCL on CUDA) with the same global batch and reports
the epoch's tokens/s. `streaming-memory` writes a synthetic JSON Lines file, trains
on it with --streaming and reports the training process's peak resident memory.
Both print JSON and write it to --output.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.scaling import streaming_memory, throughput

# a small model for the streaming measurement: it measures the data path's memory, not the GRU
STREAMING_MODEL = ["--epochs", "1", "--batch-size", "256", "--embedding-dim", "32", "--hidden-size", "32", "--num-layers", "1",
                   "--vocab-size", "2000"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("throughput", help="tokens/s of one epoch per PROCESSESxTHREADS layout, same global batch")
    p.add_argument("--train-file", required=True)
    p.add_argument("--validation-file", required=True)
    p.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="PROCESSESxTHREADS (default: %(default)s)")
    p.add_argument("--global-batch", type=int, default=64, help="texts per optimisation step over all processes (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--torchrun", action="store_true", help="launch one-process layouts through torchrun too (--nproc_per_node=1)")
    p = commands.add_parser("streaming-memory", help="peak memory of a --streaming run on synthetic JSON Lines")
    p.add_argument("--lines", type=int, default=2_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep-data", help="folder to keep (and reuse) the synthetic file in")
    for p in commands.choices.values():
        p.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.command == "throughput":
        layouts = [tuple(int(n) for n in layout.split("x")) for layout in args.layouts]
        result = {"throughput": throughput(args.train_file, args.validation_file, layouts, args.global_batch, args.device, [],
                                              args.torchrun)}
    else:
        keep = Path(args.keep_data) if args.keep_data else None
        result = {"streaming_memory": streaming_memory(args.lines, STREAMING_MODEL, args.threads, keep), "model": STREAMING_MODEL}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
