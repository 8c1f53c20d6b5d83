"""Training precision: float32 by default, or bf16 mixed precision (autocast) on request."""

from __future__ import annotations

import contextlib

import torch

from ..config import PRECISIONS


def fast_bf16(device: torch.device | str) -> bool:
    """Whether `device` has bf16 matrix units: a CUDA GPU with bf16 support, or a CPU with AMX tiles."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(check and check())
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The concrete precision ("fp32" or "bf16") for `precision` on `device`.

    auto is fp32 on every device; bf16 is an explicit choice. This model is too small for
    bf16 to pay: on an H200 one training epoch (`python scripts/benchmark.py --epoch --device cuda`)
    ran 1.2-1.3x faster in fp32 than under bf16 autocast at batch 64, 256 and 1,024, the
    casts costing more than cuDNN saves; on the CPU, even with AMX, autocast measured slower
    on short texts and only about 1.2x faster at 256 tokens.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Got {precision!r} instead.")
    return "fp32" if precision == "auto" else precision


def autocast(precision: str, device: torch.device | str):
    """A context that runs the forward pass in `precision` ("fp32": a no-op)."""
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
