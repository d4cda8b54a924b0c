"""Seeding, device choice, timing and moving batches to a device, which every chapter uses (chapter 00).

The training loop lives in `vitlib.train`."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


__all__ = ["seed_everything", "get_device", "Timer", "to_device", "count_parameters"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's `random`, numpy and torch (every device); return a torch.Generator seeded the same.

    The generator is what a DataLoader takes (`generator=`) so that shuffling is reproducible too.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:  # numpy's legacy seeding accepts 32-bit seeds only
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the device to compute on: cuda > mps > cpu.

    `VITLIB_DEVICE` (e.g. "cpu") overrides the automatic choice and `prefer` overrides both.
    Asking for a device this machine does not have raises ValueError.
    """
    wanted = prefer if prefer is not None else os.environ.get("VITLIB_DEVICE") or None
    if wanted is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    source = "prefer" if prefer is not None else "VITLIB_DEVICE"
    if not isinstance(wanted, (str, torch.device)):
        raise TypeError(f"{source} must be a str or torch.device, got {type(wanted).__name__}")
    try:
        device = torch.device(wanted.strip().lower() if isinstance(wanted, str) else wanted)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{source} must be one of 'cpu', 'cuda', 'cuda:N', 'mps'; got {str(wanted)!r}")
    ok = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": _mps_available(),
    }[device.type]
    if not ok:
        raise ValueError(f"{source} asks for {str(device)!r}, but this machine has only {_available_devices()}")
    return device


class Timer:
    """Wall-clock timer: `with Timer() as t: ...` then `t.seconds` (also readable while running)."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._end: float | None = None

    def __enter__(self) -> Timer:
        self._start, self._end = time.perf_counter(), None
        return self

    def __exit__(self, *exc) -> None:
        self._end = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self._start is None:
            return 0.0
        return (self._end if self._end is not None else time.perf_counter()) - self._start

    def __str__(self) -> str:
        s = self.seconds
        if s < 1:
            return f"{s * 1e3:.1f} ms"
        if s < 60:
            return f"{s:.2f} s"
        return f"{int(s // 60)} min {s % 60:.1f} s"

    def __repr__(self) -> str:
        return f"Timer({self})"


def to_device(batch, device: torch.device | str):
    """Move the tensors in a batch (nested tuples, lists, dicts) to `device`; leave everything else alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple: rebuild field by field
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in `module` (only those with requires_grad if `trainable_only`)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
