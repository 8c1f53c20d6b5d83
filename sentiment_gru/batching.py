"""Length-bucketed batches of token ids, padded into tensors with their lengths."""

from __future__ import annotations

import random

import numpy as np
import torch


def bucketed_batches(lengths: list[int], batch_size: int, bucket_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of row indices whose texts have similar lengths.

    Rows are shuffled, cut into chunks of `bucket_size` batches, sorted by length
    within each chunk and cut into batches; the batch order is shuffled again.
    Little padding is computed, and every epoch still sees new batch mixes.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * bucket_size
    batches = []
    for start in range(0, len(order), chunk):
        rows = sorted(order[start:start + chunk], key=lengths.__getitem__)
        batches.extend(rows[i:i + batch_size] for i in range(0, len(rows), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches of row indices in length order, for evaluation."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(sequences: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists into `ids: [batch, max_len]` and `lengths: [batch]` (int64, on the CPU)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    ids = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    return torch.from_numpy(ids), torch.from_numpy(lengths)
