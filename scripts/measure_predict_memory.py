"""Peak memory and speed of `predict.py --file` on large files: streaming keeps memory flat, and --output keeps pace with
the Python API.

    $ python scripts/measure_predict_memory.py --artifacts artifacts
    $ python scripts/measure_predict_memory.py --artifacts artifacts --lines 10000 100000 --output memory.json
    $ python scripts/measure_predict_memory.py --artifacts artifacts --lines --parquet 10000 1000000

For each --lines count, a file of short review-like lines goes through `predict.py --file F` (output discarded). For
each --parquet count, a Parquet table (id, text, stars) goes through `predict.py --file F --output scored.parquet`,
whose rows and columns are then checked, and the same texts through the Python API (`predict_proba` on all of them,
held in memory) in a process of its own, after a warm-up. Each run is a subprocess whose peak resident set size is
read (getrusage RUSAGE_CHILDREN, in a fresh wrapper process per run). Texts/s are predict's own figure (its summary
line, without start-up) and the API's timed call, so their ratio compares the work alone. The load average is read
before each run: on a shared machine, compare figures from one run of this script only.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = "the a film movie plot cast wonderful dull moving tedious brilliant clumsy funny boring story script really quite".split()
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"  # KiB on Linux
    "sys.exit(done.returncode)\n"
)
API_RATE = (  # texts/s of SentimentClassifier.predict_proba on every text of a Parquet file, held in memory
    "import sys, time\n"
    "import pyarrow.parquet as pq\n"
    "from sentiment_gru import SentimentClassifier\n"
    "artifacts, file, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "texts = pq.read_table(file, columns=['text']).column('text').to_pylist()\n"
    "clf = SentimentClassifier.from_pretrained(artifacts)\n"
    "clf.predict_proba(texts[:batch_size], batch_size)\n"
    "started = time.perf_counter()\n"
    "clf.predict_proba(texts, batch_size)\n"
    "print(f'{len(texts) / (time.perf_counter() - started):.1f} texts/s', file=sys.stderr)\n"
)
RATE = re.compile(r"\(([\d,.]+) texts/s\)|^([\d.]+) texts/s", re.M)


def review(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(4, 30)))


def write_lines(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            handle.write(review(rng) + "\n")


def write_parquet(path: Path, count: int, seed: int = 0, chunk: int = 100_000) -> None:
    """`count` rows of id (a zero-padded string), text and stars (an int), written a chunk at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("stars", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, count, chunk):
            ids = range(start, min(count, start + chunk))
            writer.write_table(pa.table({"id": [f"{i:09d}" for i in ids], "text": [review(rng) for _ in ids],
                                         "stars": [rng.randint(1, 5) for _ in ids]}, schema=schema))


def load_average() -> float:
    return os.getloadavg()[0]


def measured(cmd: list[str]) -> dict:
    """Peak RSS in MiB, wall seconds and texts/s (from the command's stderr) of one run of `cmd`."""
    load = load_average()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed:\n{done.stderr}")
    rate = RATE.search(done.stderr)
    return {"peak_rss_mib": round(int(done.stdout.strip()) / 1024, 1), "seconds": round(time.perf_counter() - start, 1),
            "texts_per_second": float((rate.group(1) or rate.group(2)).replace(",", "")) if rate else None, "load_before": round(load, 2)}


def predict_cmd(artifacts: str, file: Path, batch_size: int, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "predict.py"), "--artifacts", artifacts, "--file", str(file),
            "--batch-size", str(batch_size), "--quiet", *extra]


def check_scored(path: Path, count: int) -> None:
    """The scored file holds every row, its input columns first and in order."""
    import pyarrow.parquet as pq

    scored = pq.ParquetFile(path)
    names = scored.schema_arrow.names
    if scored.metadata.num_rows != count or names[:3] != ["id", "text", "stars"] or "predicted_label" not in names:
        raise SystemExit(f"{path}: {scored.metadata.num_rows} rows, columns {names}; expected {count} rows with id, text, stars first")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--lines", type=int, nargs="*", default=[10_000, 1_000_000], help="plain-text files of these many lines")
    parser.add_argument("--parquet", type=int, nargs="*", default=[], help="Parquet tables of these many rows, scored with --output")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.lines:
            file = Path(tmp) / f"lines-{count}.txt"
            write_lines(file, count)
            run = measured(predict_cmd(args.artifacts, file, args.batch_size))
            rows.append({"input": "lines", "texts": count, "file_mib": round(file.stat().st_size / 2**20, 1), **run})
            print(f"{count:>10,} lines    file {rows[-1]['file_mib']:>6.1f} MiB  peak RSS {run['peak_rss_mib']:7.1f} MiB  "
                  f"{run['seconds']:7.1f} s  (load {run['load_before']:.2f})", flush=True)
            file.unlink()
        for count in args.parquet:
            file, scored = Path(tmp) / f"table-{count}.parquet", Path(tmp) / f"scored-{count}.parquet"
            write_parquet(file, count)
            api = measured([sys.executable, "-c", API_RATE, args.artifacts, str(file), str(args.batch_size)])
            run = measured(predict_cmd(args.artifacts, file, args.batch_size, "--output", str(scored)))
            check_scored(scored, count)
            ratio = run["texts_per_second"] / api["texts_per_second"]
            rows.append({"input": "parquet", "texts": count, "file_mib": round(file.stat().st_size / 2**20, 1), **run,
                         "scored_mib": round(scored.stat().st_size / 2**20, 1), "api": api, "ratio_to_api": round(ratio, 3)})
            print(f"{count:>10,} rows     file {rows[-1]['file_mib']:>6.1f} MiB  peak RSS {run['peak_rss_mib']:7.1f} MiB  "
                  f"{run['seconds']:7.1f} s  --output {run['texts_per_second']:,.0f} texts/s (load {run['load_before']:.2f}); "
                  f"API {api['texts_per_second']:,.0f} texts/s, peak RSS {api['peak_rss_mib']:.1f} MiB (load {api['load_before']:.2f}); "
                  f"ratio {ratio:.2f}", flush=True)
            file.unlink()
            scored.unlink()
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
