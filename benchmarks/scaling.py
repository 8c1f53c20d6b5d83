"""Measurements for the README's Scaling section: processes against threads, and streaming memory.

Each measurement runs the real training command (`scripts/train.py`, through
torchrun when there are several processes) in a child process and reads what it
wrote: the first epoch's tokens/s from `history.json`, and the child's peak
resident memory from `resource.getrusage(RUSAGE_CHILDREN)`.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sentiment_gru.data.synthetic import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"


def train_command(processes: int, args: list[str], torchrun: bool = False) -> list[str]:
    """The training command for `processes` processes on this machine: torchrun for several (or for one, with
    `torchrun`), plain python for one."""
    if processes == 1 and not torchrun:
        return [sys.executable, str(TRAIN_SCRIPT), *args]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", f"--master_port={port}",
            str(TRAIN_SCRIPT), *args]


def run_training(processes: int, threads: int, args: list[str], torchrun: bool = False) -> dict[str, Any]:
    """Run one training command with `threads` torch threads per process; its wall time, history and config."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        done = subprocess.run(train_command(processes, [*args, "--output-dir", str(out), "--quiet"], torchrun), env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"training failed ({done.returncode}): {done.stderr[-2000:]}")
        history = json.loads((out / "history.json").read_text())
        config = json.loads((out / "config.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_seconds": wall, "history": history, "config": config, "metrics": metrics}


def throughput(train_file: str, validation_file: str, layouts: list[tuple[int, int]], global_batch: int, device: str,
               extra: list[str], torchrun: bool = False) -> list[dict[str, Any]]:
    """One training epoch per layout (processes x threads), all with the same global batch; tokens/s of the epoch.
    With `torchrun`, a one-process layout is launched through torchrun too (as `torchrun --nproc_per_node=1`)."""
    rows = []
    for processes, threads in layouts:
        if global_batch % processes:
            raise ValueError(f"global batch {global_batch} does not divide among {processes} processes")
        args = ["--train-file", train_file, "--validation-file", validation_file, "--label-names", "negative,positive",
                "--epochs", "1", "--batch-size", str(global_batch // processes), "--device", device, *extra]
        run = run_training(processes, threads, args, torchrun)
        epoch = run["history"]["epochs"][0]
        rows.append({
            "processes": processes, "threads_per_process": threads, "batch_per_process": global_batch // processes,
            "global_batch": global_batch, "launcher": "torchrun" if processes > 1 or torchrun else "python",
            "epoch_seconds": round(epoch["seconds"], 2),
            "tokens_per_second": round(epoch["tokens_per_second"]), "val_accuracy": round(epoch["val_accuracy"], 4),
            "command_wall_seconds": round(run["wall_seconds"], 2), "device": run["config"]["device"],
        })
    return rows


def streaming_memory(lines: int, extra: list[str], threads: int, keep: Path | None = None) -> dict[str, Any]:
    """Train with --streaming on a synthetic JSON Lines file of `lines` texts; peak memory of the training process."""
    with tempfile.TemporaryDirectory() as tmp:
        data = (keep or Path(tmp)) / f"synthetic-{lines}.jsonl"
        if not data.is_file():
            write_jsonl(data, lines)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        run = run_training(1, threads, ["--train-file", str(data), "--streaming", "--label-names", "negative,positive", *extra])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB on Linux
        epoch = run["history"]["epochs"][0]
        return {
            "lines": lines, "file_mib": round(data.stat().st_size / 2**20, 1),
            "peak_rss_mib": round(peak_kib / 1024, 1), "peak_rss_before_mib": round(before / 1024, 1),
            "train_rows": run["config"]["data"]["source"]["sizes"]["train"],
            "validation_rows": run["config"]["data"]["source"]["sizes"]["validation"],
            "epoch_seconds": round(epoch["seconds"], 1), "tokens_per_second": round(epoch["tokens_per_second"]),
            "validation_accuracy": round(run["metrics"]["accuracy"], 4), "command_wall_seconds": round(run["wall_seconds"], 1),
            "model_written": True,
        }
