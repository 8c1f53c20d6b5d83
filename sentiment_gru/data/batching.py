"""Length-bucketed batches of token ids, padded into tensors with their lengths.

Token ids live in Arrow tables (`TokenIds`), memory-mapped when they come from a
datasets cache file; a batch's rows become a padded tensor without the corpus
ever becoming a Python list. With several processes each takes its own shard of
the batches (`shard_batches`); a stream is bucketed within a rolling buffer
(`streamed_batches`). Training reads either through one interface
(`HeldBatches`, `StreamBatches`); inference runs a model over length-sorted
batches (`batched_logits`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError


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


@torch.no_grad()
def batched_logits(model: torch.nn.Module, sequences: list[list[int]] | TokenIds, batch_size: int,
                   device: torch.device | str, pad_id: int = 0) -> torch.Tensor:
    """Logits of every sequence, in input order: [len(sequences), num_classes] float32 on the CPU."""
    was_training = model.training
    model.eval()
    out = torch.empty(len(sequences), model.config.num_classes)
    arrow = isinstance(sequences, TokenIds)
    for rows in sorted_batches(sequences.lengths if arrow else [len(s) for s in sequences], batch_size):
        ids, lengths = sequences.batch(rows, pad_id) if arrow else collate([sequences[i] for i in rows], pad_id)
        out[rows] = model(ids.to(device), lengths).float().cpu()
    model.train(was_training)
    return out


# ---------------------------------------------------------------- training batches


@dataclass
class Batch:
    ids: torch.Tensor  # [batch, max_len] token ids, padded
    lengths: torch.Tensor  # [batch] int64, on the CPU
    labels: torch.Tensor  # [batch] class ids
    rows: np.ndarray | None  # [batch] the texts' rows in the split; None for a stream or a made-up variant
    teacher: torch.Tensor | None = None  # distilling: [batch, classes] the teacher's log-probabilities for these texts


class HeldBatches:
    """One rank's shard of the length-bucketed batches of a split held as token ids, epoch after epoch."""

    def __init__(self, ids: TokenIds, labels: np.ndarray, batch_size: int, bucket_size: int, rank: int = 0, world_size: int = 1,
                 pad_id: int = 0):
        self.ids, self.labels = ids, torch.from_numpy(labels)
        self.lengths = ids.lengths.tolist()  # plain ints sort faster than NumPy scalars
        self.batch_size, self.bucket_size, self.rank, self.world_size, self.pad_id = batch_size, bucket_size, rank, world_size, pad_id
        self.steps = _check_steps(math.ceil(len(ids) / batch_size) // world_size, len(ids), batch_size, world_size)

    def epoch(self, number: int, rng: random.Random, skip: int = 0) -> Iterator[Batch]:
        """This epoch's batches from batch `skip` on; `rng` shuffles them (the same on every rank)."""
        batches = bucketed_batches(self.lengths, self.batch_size, self.bucket_size, rng)
        for rows in shard_batches(batches, self.rank, self.world_size)[skip:]:
            ids, lengths = self.ids.batch(rows, self.pad_id)
            rows = np.asarray(rows)
            yield Batch(ids, lengths, self.labels[rows], rows)


class StreamBatches:
    """One rank's length-bucketed batches of a stream of (text, label) rows, tokenized as they are read."""

    def __init__(self, epoch_rows: Callable[[int], Iterable[tuple[str, int]]], rows: int, encode: Callable[[list[str]], list[list[int]]],
                 batch_size: int, bucket_size: int, rank: int = 0, world_size: int = 1, pad_id: int = 0):
        self.epoch_rows, self.encode = epoch_rows, encode
        self.batch_size, self.bucket_size, self.rank, self.world_size, self.pad_id = batch_size, bucket_size, rank, world_size, pad_id
        self.steps = _check_steps(streamed_steps(rows, batch_size, bucket_size, world_size), rows, batch_size, world_size)

    def epoch(self, number: int, rng: random.Random, skip: int = 0) -> Iterator[Batch]:
        assert skip == 0, "a streamed epoch is never resumed mid-way"
        for sequences, labels in streamed_batches(self.epoch_rows(number), self.encode, self.batch_size, self.bucket_size, rng,
                                                  self.rank, self.world_size):
            ids, lengths = collate(sequences, self.pad_id)
            yield Batch(ids, lengths, torch.tensor(labels), None)


def _check_steps(steps: int, rows: int, batch_size: int, world_size: int) -> int:
    if steps == 0:
        raise ConfigError(
            f"The training split has {rows} rows: too few for {world_size} processes with --batch-size {batch_size}. "
            "Lower --batch-size or start fewer processes."
        )
    return steps
