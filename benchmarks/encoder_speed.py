"""Throughput of BiGRUEncoder's "packed" and "fast" implementations, and one training epoch.

Throughput counts real (non-padding) tokens per second. Training means forward +
backward of a sum loss over outputs and h_n (no optimizer step); inference means
forward under `torch.no_grad()`. Both implementations are timed in the same run on
the same batches, taking turns, so their ratio holds even when the machine is busy.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import random
import statistics
import time
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from sentiment_gru.model import kernels
from sentiment_gru.data.batching import bucketed_batches, collate
from sentiment_gru.config import ModelConfig
from sentiment_gru.train.distributed import resolve_device
from sentiment_gru.model.encoder import BiGRUEncoder, resolve_impl
from sentiment_gru.errors import ConfigError
from sentiment_gru.model.classifier import GRUClassifier
from sentiment_gru.train.precision import autocast, fast_bf16, resolve_precision

logger = logging.getLogger(__name__)

IMPLS = ("packed", "fast")


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (None keeps the default); return the count in use."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"The 'threads' option must be a positive int. Got {threads} instead.")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def random_lengths(batch_size: int, max_len: int, generator: torch.Generator) -> Tensor:
    """Lengths drawn uniformly from [max_len // 2, max_len], one of them exactly max_len."""
    lengths = torch.randint(max(1, max_len // 2), max_len + 1, (batch_size,), generator=generator)
    lengths[0] = max_len
    return lengths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of each step over `repeats` runs after `warmup` runs, the steps taking turns.

    Taking turns spreads a busy machine's slow spells over all the steps alike.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def encoder_throughput(
    lengths: Sequence[int] = (32, 128, 256, 512),
    batch_size: int = 64,
    repeats: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    input_size: int = 128,
    hidden_size: int = 128,
    num_layers: int = 2,
    seed: int = 0,
) -> list[dict]:
    """Tokens/s of both implementations per max length and mode; one dict per (length, mode).

    Modes: "train" and "infer" in float32, plus "train-bf16" and "infer-bf16" (autocast) where
    the device has bf16 matrix units. bf16 rows also give the speed-up over the float32
    packed reference of the same length, the baseline the project's training replaces.
    """
    dev = resolve_device(device)
    if batch_size < 1 or repeats < 1 or any(n < 1 for n in lengths):
        raise ConfigError(
            f"batch_size, repeats and every length must be positive. "
            f"Got batch_size={batch_size}, repeats={repeats}, lengths={list(lengths)}."
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    encoder = BiGRUEncoder(input_size, hidden_size, num_layers).to(dev)
    modes = [("train", "fp32"), ("infer", "fp32")]
    if fast_bf16(dev):
        modes += [("train-bf16", "bf16"), ("infer-bf16", "bf16")]
    rows = []
    for max_len in lengths:
        x = torch.randn(batch_size, max_len, input_size, device=dev, requires_grad=True)
        lens = random_lengths(batch_size, max_len, generator)
        tokens = int(lens.sum())
        packed_fp32 = {}  # mode without precision -> seconds of the float32 packed reference
        for mode, precision in modes:

            def step(impl: str) -> None:
                encoder.impl = impl
                with autocast(precision, dev):
                    if mode.startswith("train"):
                        out, h_n = encoder(x, lens)
                        (out.float().sum() + h_n.float().sum()).backward()
                    else:
                        with torch.no_grad():
                            encoder(x, lens)

            seconds = _time({impl: functools.partial(step, impl) for impl in IMPLS}, dev, warmup, repeats)
            row = {
                "max_len": max_len,
                "mode": mode,
                "tokens": tokens,
                "packed_tok_s": tokens / seconds["packed"],
                "fast_tok_s": tokens / seconds["fast"],
                "speedup": seconds["packed"] / seconds["fast"],
            }
            kind = mode.split("-")[0]
            if precision == "fp32":
                packed_fp32[kind] = seconds["packed"]
            else:
                row["speedup_vs_fp32_packed"] = packed_fp32[kind] / seconds["fast"]
            logger.info("len %d %s: packed %.0f tok/s, fast %.0f tok/s (x%.1f)", max_len, mode,
                        row["packed_tok_s"], row["fast_tok_s"], row["speedup"])
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The throughput rows as a plain-text table."""
    lines = [f"{'length':>6}  {'mode':<10}  {'packed tok/s':>12}  {'fast tok/s':>10}  {'speed-up':>8}  {'vs fp32 packed':>14}"]
    for r in rows:
        versus = f"{r['speedup_vs_fp32_packed']:>13.1f}x" if "speedup_vs_fp32_packed" in r else f"{'':>14}"
        lines.append(f"{r['max_len']:>6}  {r['mode']:<10}  {r['packed_tok_s']:>12.0f}  "
                     f"{r['fast_tok_s']:>10.0f}  {r['speedup']:>7.1f}x  {versus}")
    return "\n".join(lines)


# --- One training epoch on IMDB-like data ------------------------------------------------


def imdb_like_lengths(n: int, median: float = 380.0, sigma: float = 0.75, max_len: int = 256,
                      min_len: int = 10, seed: int = 0) -> list[int]:
    """Log-normal lengths cut to [min_len, max_len]; the defaults give a mean of about 230 after the cut."""
    rng = random.Random(seed)
    return [min(max_len, max(min_len, round(rng.lognormvariate(math.log(median), sigma)))) for _ in range(n)]


def training_epoch(
    num_texts: int = 25_000,
    vocab_size: int = 16_000,
    batch_size: int = 64,
    max_len: int = 256,
    embed_size: int = 128,
    hidden_size: int = 128,
    num_layers: int = 2,
    impl: str = "auto",
    device: str = "cpu",
    precision: str = "auto",
    seed: int = 0,
) -> dict:
    """Wall time of one epoch (forward + backward + AdamW step) over random-token IMDB-like texts.

    The model is the project's classifier (default pooling and dropout); batches come from the
    training loop's own bucketing and padding, so the collate share is the real pipeline's, and
    malloc keeps freed memory as it does while training (`kernels.reusing_freed_memory`).
    """
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    impl = resolve_impl(impl, dev)
    if num_texts < 1 or batch_size < 1:
        raise ConfigError(f"num_texts and batch_size must be positive. Got {num_texts} and {batch_size}.")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    lengths = imdb_like_lengths(num_texts, max_len=max_len, seed=seed)
    texts = [[rng.randrange(1, vocab_size) for _ in range(n)] for n in lengths]
    labels = torch.tensor([rng.randrange(2) for _ in range(num_texts)])
    batches = bucketed_batches(lengths, batch_size, bucket_size=50, rng=rng)
    model = GRUClassifier(ModelConfig(vocab_size=vocab_size, embedding_dim=embed_size, hidden_size=hidden_size,
                                      num_layers=num_layers, gru_impl=impl)).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    collate_s = step_s = 0.0
    start = time.perf_counter()
    with kernels.reusing_freed_memory():  # as the training loop runs its epochs
        for k, batch in enumerate(batches):
            t0 = time.perf_counter()
            ids, lens = collate([texts[i] for i in batch])
            t1 = time.perf_counter()
            with autocast(precision, dev):
                logits = model(ids.to(dev), lens)
            loss = loss_fn(logits.float(), labels[batch].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(dev)
            t2 = time.perf_counter()
            collate_s += t1 - t0
            step_s += t2 - t1
            if (k + 1) % 50 == 0:
                logger.info("batch %d/%d, %.0f s", k + 1, len(batches), t2 - start)
    wall = time.perf_counter() - start
    tokens = sum(lengths)
    return {
        "impl": impl,
        "precision": precision,
        "num_texts": num_texts,
        "batches": len(batches),
        "tokens": tokens,
        "mean_length": tokens / num_texts,
        "epoch_s": wall,
        "tok_s": tokens / wall,
        "collate_ms_per_batch": 1000 * collate_s / len(batches),
        "step_ms_per_batch": 1000 * step_s / len(batches),
        "collate_fraction": collate_s / step_s,
    }


def format_epoch(result: dict) -> str:
    """The epoch measurement as a few readable lines."""
    r = result
    return (
        f"epoch ({r['impl']}, {r['precision']}): {r['num_texts']} texts, {r['batches']} batches, "
        f"{r['tokens']} tokens (mean length {r['mean_length']:.0f})\n"
        f"wall time {r['epoch_s']:.1f} s ({r['epoch_s'] / 60:.2f} min), {r['tok_s']:.0f} tok/s\n"
        f"collate {r['collate_ms_per_batch']:.2f} ms/batch vs training step "
        f"{r['step_ms_per_batch']:.1f} ms/batch ({100 * r['collate_fraction']:.2f}% of step time)"
    )


def environment() -> dict:
    """Versions and thread count to store next to the numbers."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "fused_kernels": kernels.load() is not None,
        "onednn": torch.backends.mkldnn.is_available(),
        "cpu_bf16_matrix_units": fast_bf16("cpu"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
