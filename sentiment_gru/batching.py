"""Length-bucketed batches of token ids, padded into tensors with their lengths.

Token ids live in Arrow tables (`TokenIds`), memory-mapped when they come from a
datasets cache file; a batch's rows become a padded tensor without the corpus
ever becoming a Python list. With several processes each takes its own shard of
the batches (`shard_batches`); a stream is bucketed within a rolling buffer
(`streamed_batches`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

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


def shard_batches(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """One process's batches: every world_size-th from `rank` on, the same number for every rank.

    Every rank shuffles with the same seed, so the shards are disjoint. Neighbouring
    batches come from one length bucket, so the ranks' batches of a step have similar
    lengths and none waits long for another. Up to world_size - 1 batches are left out.
    """
    per_rank = len(batches) // world_size
    return batches[rank::world_size][:per_rank]


class TokenIds:
    """Token id sequences in an Arrow list column; `lengths` is a NumPy array of their lengths."""

    def __init__(self, column) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.column = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
        self.lengths = pc.list_value_length(self.column).to_numpy().astype(np.int64)

    @classmethod
    def from_dataset(cls, dataset, column: str = "ids") -> "TokenIds":
        """The `ids` column of a `datasets.Dataset`, without copying it out of its (memory-mapped) table."""
        return cls(dataset.with_format("arrow")[:].column(column))

    @classmethod
    def from_lists(cls, sequences: list[list[int]]) -> "TokenIds":
        import pyarrow as pa

        return cls(pa.array(sequences, type=pa.list_(pa.int32())))

    def __len__(self) -> int:
        return len(self.lengths)

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """How often each token id occurs: [vocab_size]."""
        return np.bincount(self.column.combine_chunks().flatten().to_numpy(), minlength=vocab_size)

    def take(self, rows) -> "TokenIds":
        return TokenIds(self.column.take(np.asarray(rows, dtype=np.int64)))

    def batch(self, rows, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows padded, as `collate` pads them: `ids: [len(rows), max_len]` and `lengths: [len(rows)]`."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        values = self.column.take(rows).combine_chunks().flatten().to_numpy()
        ids = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
        ids[np.arange(ids.shape[1]) < lengths[:, None]] = values  # row by row, as the values are laid out
        return torch.from_numpy(ids), torch.from_numpy(lengths)


def streamed_batches(rows: Iterable[tuple[str, int]], encode: Callable[[list[str]], list[list[int]]], batch_size: int,
                     bucket_size: int, rng: random.Random, rank: int = 0, world_size: int = 1) -> Iterator[tuple[list[list[int]], list[int]]]:
    """Length-bucketed batches (token ids, labels) from a stream of (text, label) rows, for one rank.

    A rolling buffer holds `batch_size * bucket_size * world_size` rows; each rank
    takes every world_size-th of them, tokenizes only those and buckets them as
    `bucketed_batches` does. Every rank sees the same rows and gets the same number
    of batches (a final buffer that does not divide evenly loses up to world_size - 1 rows).
    """
    size = batch_size * bucket_size * world_size
    buffer: list[tuple[str, int]] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) == size:
            yield from _bucket_buffer(buffer, encode, batch_size, bucket_size, rng, rank, world_size)
            buffer = []
    if len(buffer) >= world_size:
        yield from _bucket_buffer(buffer, encode, batch_size, bucket_size, rng, rank, world_size)


def _bucket_buffer(buffer, encode, batch_size, bucket_size, rng, rank, world_size):
    per_rank = len(buffer) // world_size
    mine = buffer[rank::world_size][:per_rank]
    ids = encode([text for text, _ in mine])
    for rows in bucketed_batches([len(s) for s in ids], batch_size, bucket_size, rng):
        yield [ids[i] for i in rows], [mine[i][1] for i in rows]


def streamed_steps(rows: int, batch_size: int, bucket_size: int, world_size: int = 1) -> int:
    """How many batches `streamed_batches` gives each rank for a stream of `rows` rows."""
    size = batch_size * bucket_size * world_size
    last = (rows % size) // world_size
    return (rows // size) * bucket_size + -(-last // batch_size)
