"""Measure predict's start-up against `python -c "import torch, tokenizers"`, in one run.

    $ python scripts/measure_startup.py --artifacts artifacts --repeats 7

Runs both commands alternately, reports the median wall time of each and their ratio
(the target: predict at most 1.25 times the bare imports).
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
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    reference = [sys.executable, "-c", "import torch, tokenizers"]
    predict = [sys.executable, str(ROOT / "scripts" / "predict.py"), "--artifacts", args.artifacts, "what a wonderful film"]
    wall(reference), wall(predict)  # warm the file cache
    times = {"imports": [], "predict": []}
    for _ in range(args.repeats):
        times["imports"].append(wall(reference))
        times["predict"].append(wall(predict))
    result = {k: statistics.median(v) for k, v in times.items()}
    result["ratio"] = result["predict"] / result["imports"]
    print(f"import torch, tokenizers: {result['imports']:.3f}s  predict: {result['predict']:.3f}s  ratio {result['ratio']:.2f} (median of {args.repeats})")
    if args.output:
        Path(args.output).write_text(json.dumps({**result, "repeats": args.repeats, "samples": times}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
