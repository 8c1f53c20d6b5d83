"""Scaling out: sharded bucketed batches, Arrow token ids, streaming, and a real 2-process gloo run through torchrun."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_rows, write_csv
from sentiment_gru.data.batching import TokenIds, bucketed_batches, collate, shard_batches, streamed_batches, streamed_steps
from sentiment_gru.cli import train_main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "4", "--vocab-size", "200", "--embedding-dim", "16", "--hidden-size", "16", "--learning-rate", "0.01",
        "--dropout", "0.1", "--embedding-dropout", "0.1", "--quiet"]
ACCURACY_TOLERANCE = 0.1  # 2 processes x batch 4 against 1 process x batch 8, on 60 test texts


def test_shards_are_disjoint_equal_and_keep_the_bucketing():
    lengths = [random.Random(i).randint(1, 200) for i in range(1003)]
    batches = bucketed_batches(lengths, batch_size=8, bucket_size=10, rng=random.Random(0))
    shards = [shard_batches(batches, rank, 3) for rank in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(batches) // 3
    rows = [i for shard in shards for batch in shard for i in batch]
    assert len(rows) == len(set(rows)) >= len(lengths) - 2 * 8
    assert shard_batches(batches, 0, 1) == batches  # one process: every batch, in order
    padding = sum(max(lengths[i] for i in b) * len(b) for b in shards[1]) / sum(lengths[i] for b in shards[1] for i in b)
    assert padding < 1.15


def test_arrow_token_ids_pad_as_collate_does():
    sequences = [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]]
    ids = TokenIds.from_lists(sequences)
    assert ids.lengths.tolist() == [3, 1, 2, 4]
    for rows in ([1, 3], [2, 0, 1], [3]):
        got, expected = ids.batch(rows), collate([sequences[i] for i in rows])
        assert got[0].tolist() == expected[0].tolist() and got[1].tolist() == expected[1].tolist()
    assert ids.take([3, 1]).lengths.tolist() == [4, 1]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_streamed_batches_count_matches_the_schedule_and_ranks_agree(world_size):
    rows = [(" ".join(["w"] * random.Random(i).randint(1, 9)), i % 2) for i in range(257)]
    encode = lambda texts: [[1] * len(t.split()) for t in texts]  # noqa: E731
    per_rank = [list(streamed_batches(iter(rows), encode, 4, 5, random.Random(0), rank, world_size)) for rank in range(world_size)]
    assert {len(batches) for batches in per_rank} == {streamed_steps(len(rows), 4, 5, world_size)}
    seen = sum(len(labels) for batches in per_rank for _, labels in batches)
    assert len(rows) - world_size < seen <= len(rows)


def test_streaming_trains_a_model_from_json_lines(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in make_rows(600, seed=4)), encoding="utf-8")
    out = tmp_path / "model"
    assert train_main(["--train-file", str(train), "--streaming", "--stream-sample-size", "200", "--output-dir", str(out),
                       "--batch-size", "16", *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["data"]["streaming"] is True and "baseline" not in metrics
    assert metrics["split"] == "validation" and 30 < metrics["size"] < 100  # a seeded 10% held out from the stream
    assert metrics["accuracy"] > 0.85
    assert any("held out" in note for note in config["data"]["notes"])


@pytest.mark.parametrize("argv, message", [
    (["--streaming"], "--streaming reads a large --train-file or --dataset"),
    (["--train-file", "{train}", "--streaming", "--resume"], "--resume cannot continue a --streaming run"),
    (["--train-file", "{train}", "--stream-sample-size", "10"], "--stream-sample-size only applies with --streaming"),
])
def test_streaming_options_it_cannot_honour_are_refused(tmp_path, capsys, argv, message):
    train = write_csv(tmp_path / "train.csv", make_rows(40))
    argv = [a.format(train=train) for a in argv]
    assert train_main([*argv, "--output-dir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("extra", [[], ["--pretrain-epochs", "1"]], ids=["plain", "pretrained"])
def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tmp_path, extra):
    """A real torchrun launch: 2 processes x batch 4 against 1 process x batch 8, with and without pretraining."""
    files = {
        "train": write_csv(tmp_path / "train.csv", make_rows(240, seed=1)),
        "validation": write_csv(tmp_path / "validation.csv", make_rows(60, seed=2)),
        "test": write_csv(tmp_path / "test.csv", make_rows(60, seed=3)),
    }
    data = [f"--{s}-file={p}" for s, p in files.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *data, "--output-dir", str(single), "--batch-size", "8", *TINY, *extra],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr

    shared = tmp_path / "runs"
    shared.mkdir()
    two, logs = shared / "two", tmp_path / "logs"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", "--log-dir", str(logs),
         "--redirects", "3", str(ROOT / "scripts" / "train.py"), *data, "--output-dir", str(two), "--batch-size", "4", *TINY, *extra],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr + "".join(p.read_text() for p in logs.rglob("*.log"))

    assert {p.name for p in two.iterdir()} == {p.name for p in single.iterdir()}
    assert [p.name for p in shared.iterdir()] == ["two"]  # no second model, staging folder or checkpoint left behind
    out = {int(p.parent.name): p.read_text() for p in logs.rglob("stdout.log")}
    err = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert "model written to" in out[0] and out[1] == "" and err[1] == ""  # rank 1 printed, logged and wrote nothing

    config = json.loads((two / "config.json").read_text())
    assert config["processes"] == 2 and config["train"]["batch_size"] == 4
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (single, two))
    assert abs(a["accuracy"] - b["accuracy"]) <= ACCURACY_TOLERANCE
    assert abs(a["validation"]["accuracy"] - b["validation"]["accuracy"]) <= ACCURACY_TOLERANCE
