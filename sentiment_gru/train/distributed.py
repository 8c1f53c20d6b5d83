"""Devices, and training on several processes with torch.distributed, as started by torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address in each
process's environment; without them a run is a single process and nothing here
talks to anyone. The backend is NCCL when the run trains on CUDA, gloo on CPUs.
Rank 0 is the main process: it trains the tokenizer, writes artifacts, logs and
shows progress; the others follow its decisions.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

log = logging.getLogger(__name__)

TIMEOUT = timedelta(minutes=30)  # a rank waits this long at a collective before the run fails


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, number of processes, rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Run the block on each machine's local rank 0 first, then on the other ranks (which reuse its caches)."""
        if self.enabled and self.local_rank != 0:
            self.barrier()
        yield
        if self.enabled and self.local_rank == 0:
            self.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` (any picklable object), on every rank."""
        if not self.enabled:
            return value
        box = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of `values` over the ranks."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def gather_rows(self, local: torch.Tensor, total: int, device: torch.device) -> torch.Tensor:
        """Rows computed rank-strided (rank r holds rows r, r + world, ...) put back in order, on every rank.

        local: [ceil((total - rank) / world), ...] -> [total, ...] on the CPU.
        """
        if not self.enabled:
            return local
        width = -(-total // self.world_size)
        padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=device)
        padded[: len(local)] = local.to(device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, padded)
        out = torch.empty((total, *local.shape[1:]), dtype=local.dtype)
        for rank, part in enumerate(parts):
            rows = np.arange(rank, total, self.world_size)
            out[rows] = part[: len(rows)].cpu()
        return out


SINGLE = Dist()


def from_environment() -> Dist:
    """The run's layout as torchrun describes it in the environment; a single process without it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return SINGLE
    return Dist(rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str) -> torch.device:
    """The torch device for a --device value: auto is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be a torch device such as cpu or cuda. Got {name!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was given but no CUDA device is available. Use --device cpu.")
    return device


def setup(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun described (NCCL on CUDA, else gloo); return the layout and this rank's device."""
    dist = from_environment()
    device = resolve_device(device_name)
    if not dist.enabled:
        return dist, device
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, timeout=TIMEOUT)
        if dist.is_main:
            log.info("distributed: %d processes, backend %s", dist.world_size, backend)
    return dist, device


def teardown(dist: Dist) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

