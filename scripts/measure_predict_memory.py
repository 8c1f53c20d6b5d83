"""Peak memory of `predict.py --file` on a 10,000-line and a 1,000,000-line file: streaming keeps it flat.

    $ python scripts/measure_predict_memory.py --artifacts artifacts
    $ python scripts/measure_predict_memory.py --artifacts artifacts --lines 10000 100000 --output memory.json

Writes each file of short review-like lines to a temporary folder, runs
`predict.py --file F` on it in a subprocess (output discarded) and reports that
process's peak resident set size (getrusage RUSAGE_CHILDREN, measured in a
fresh wrapper process per run) and its wall time.
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = "the a film movie plot cast wonderful dull moving tedious brilliant clumsy funny boring story script really quite".split()
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"  # KiB on Linux
)


def write_lines(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            handle.write(" ".join(rng.choices(WORDS, k=rng.randint(4, 30))) + "\n")


def peak_rss_mib(artifacts: str, file: Path, batch_size: int) -> tuple[float, float]:
    """Peak RSS in MiB and wall seconds of one predict run."""
    cmd = [sys.executable, str(ROOT / "scripts" / "predict.py"), "--artifacts", artifacts, "--file", str(file), "--batch-size", str(batch_size)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], check=True, capture_output=True, text=True)
    return int(done.stdout.strip()) / 1024, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.lines:
            file = Path(tmp) / f"lines-{count}.txt"
            write_lines(file, count)
            rss, seconds = peak_rss_mib(args.artifacts, file, args.batch_size)
            rows.append({"lines": count, "file_mib": round(file.stat().st_size / 2**20, 1), "peak_rss_mib": round(rss, 1), "seconds": round(seconds, 1)})
            print(f"{count:>10,} lines  file {rows[-1]['file_mib']:>7.1f} MiB  peak RSS {rss:7.1f} MiB  {seconds:7.1f} s", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
