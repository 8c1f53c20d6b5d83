"""Measure predict's start-up against `python -c "import torch, tokenizers"`, in one run.

    $ python scripts/measure_startup.py --artifacts artifacts --repeats 7                  # the default backend
    $ python scripts/measure_startup.py --artifacts artifacts --backend onnx torch --repeats 7

Runs the reference and `predict.py --backend B` for each backend given, alternately, and reports the
median wall time of each and its ratio to the reference (targets: the onnx backend at most 0.35 times
the bare torch imports, the torch backend at most 1.25 times).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backend", nargs="+", default=["auto"], choices=["auto", "torch", "onnx"], help="predict backends to time")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    commands = {"imports": [sys.executable, "-c", "import torch, tokenizers"]}
    for backend in args.backend:
        commands[f"predict --backend {backend}"] = [sys.executable, str(ROOT / "scripts" / "predict.py"), "--artifacts", args.artifacts,
                                                    "--backend", backend, "what a wonderful film"]
    for command in commands.values():
        wall(command)  # warm the file cache
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(wall(command))
    result = {k: statistics.median(v) for k, v in times.items()}
    print(f"import torch, tokenizers: {result['imports']:.3f}s (median of {args.repeats})")
    for name in list(commands)[1:]:
        result[f"{name} ratio"] = result[name] / result["imports"]
        print(f"{name}: {result[name]:.3f}s  ratio {result[name + ' ratio']:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps({**result, "repeats": args.repeats, "samples": times}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
