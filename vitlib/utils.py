"""Seeding, device choice, timing and the small training loop every chapter uses (chapter 00)."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .checks import check_number, describe

__all__ = ["seed_everything", "get_device", "Timer", "History", "to_device", "train", "count_parameters"]


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


class History:
    """Metric values by step: `log(step, loss=...)`, `h["loss"]`, `h.steps("loss")`, `last`, `plot`."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self._steps: dict[str, list[int]] = {}

    def log(self, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            value = value.item() if hasattr(value, "item") else value  # tensors and numpy scalars -> float
            self.values.setdefault(name, []).append(float(value))
            self._steps.setdefault(name, []).append(int(step))

    def _check(self, name: str) -> None:
        if name not in self.values:
            raise KeyError(f"no metric {name!r} in this history; it has {self.names}")

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def __getitem__(self, name: str) -> list[float]:
        self._check(name)
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def steps(self, name: str) -> list[int]:
        self._check(name)
        return self._steps[name]

    def last(self, name: str) -> float:
        self._check(name)
        return self.values[name][-1]

    def plot(self, ax=None, names: Iterable[str] | None = None):
        """Plot each metric against its steps on `ax` (a new figure if None); return the axes."""
        import matplotlib.pyplot as plt  # lazy: only plotting needs matplotlib

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        for name in self.names if names is None else list(names):
            ax.plot(self.steps(name), self[name], label=name)
        ax.set_xlabel("step")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={self.last(n):.4g} ({len(self.values[n])} values)" for n in self.names)
        return f"History({shown})"


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


def _batch_stream(batches: Iterable, steps: int | None, epochs: int | None):
    """Yield (epoch, batch): `epochs` passes over `batches`, or cycle through it until `steps` batches."""
    epoch = 0
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield epoch, batch
        if empty and epoch == 0:
            raise ValueError("batches yielded nothing: the data loader is empty (check the dataset and batch_size)")
        if empty:  # a generator is spent after one pass
            raise ValueError(f"batches ran out after {epoch} pass(es) before {steps} steps; "
                             "pass something re-iterable (a list or DataLoader), not a generator")
        epoch += 1
        if epochs is not None and epoch >= epochs:
            return


def _positive_int_or_none(value, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def train(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int | None = None,
    epochs: int | None = None,
    device: torch.device | str | None = None,
    log_every: int = 10,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    progress: bool = True,
    clip_grad_norm: float | None = None,
) -> History:
    """Train `model` for `steps` optimiser steps or `epochs` passes over `batches`; return its History.

    Each batch is moved to `device` (default: where the model's parameters are) and handed to
    `loss_fn(model, batch)`, which returns a scalar loss. The loss is logged every step; the progress
    bar shows the mean loss of the last `log_every` steps. `eval_fn(model) -> dict` runs in eval mode
    without gradients every `eval_every` steps (and after the last step), its values logged too.
    """
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps or epochs, got steps={steps!r}, epochs={epochs!r}")
    checked = ((steps, "steps"), (epochs, "epochs"), (eval_every, "eval_every"), (log_every or 0, "log_every"))
    for value, name in checked:
        _positive_int_or_none(value, name)
    if clip_grad_norm is not None:
        check_number(clip_grad_norm, "clip_grad_norm", 0.0, low_open=True)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {describe(model)}")
    if not callable(loss_fn) or not (eval_fn is None or callable(eval_fn)):
        raise TypeError(f"loss_fn (and eval_fn, if given) must be callables, got {describe(loss_fn)}, "
                        f"{describe(eval_fn)}")
    if not (hasattr(optimizer, "zero_grad") and hasattr(optimizer, "step")):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer (zero_grad and step), got {describe(optimizer)}")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    model.to(device).train()

    from tqdm.auto import tqdm  # lazy: the notebook-aware bar is only needed while training

    total = steps if steps is not None else (epochs * len(batches) if hasattr(batches, "__len__") else None)
    bar = tqdm(total=total, disable=not progress, desc="train", mininterval=1.0)  # each redraw is a kernel message
    history, window, step = History(), [], 0
    shown: dict[str, str] = {}  # what the bar shows: running loss and the latest eval metrics

    def evaluate() -> None:
        modes = [(m, m.training) for m in model.modules()]  # restored one by one: a frozen part may stay in eval
        model.eval()
        with torch.no_grad():
            results = eval_fn(model)
        for m, mode in modes:
            m.train(mode)
        if not isinstance(results, Mapping):
            raise TypeError(f"eval_fn must return a dict of metric values, got {type(results).__name__}")
        history.log(step, **results)
        shown.update({k: f"{float(v):.4g}" for k, v in results.items()})
        bar.set_postfix(shown, refresh=False)

    try:
        for epoch, batch in _batch_stream(batches, steps, epochs):
            step += 1
            loss = loss_fn(model, to_device(batch, device))
            if not isinstance(loss, torch.Tensor):
                raise TypeError(f"loss_fn must return a scalar tensor, got a {type(loss).__name__}")
            if loss.numel() != 1:
                raise ValueError(f"loss_fn must return a scalar tensor, got a tensor of shape {tuple(loss.shape)}")
            value = loss.item()
            if not math.isfinite(value):
                raise RuntimeError(f"loss is {value} at step {step} (epoch {epoch}): training diverged; "
                                   "try a lower learning rate or clip_grad_norm")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            metrics = {"loss": value}
            if clip_grad_norm is not None:  # the norm before clipping tells how often clipping bites
                metrics["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            history.log(step, **metrics)
            window = (window + [value])[-log_every:]
            bar.update(1)
            if step % log_every == 0:
                shown["loss"] = f"{sum(window) / len(window):.4f}"
                bar.set_postfix(shown, refresh=False)   # shown at the next redraw
            if eval_fn is not None and eval_every is not None and step % eval_every == 0:
                evaluate()
            if step == steps:
                break
        if eval_fn is not None and (eval_every is None or step % eval_every != 0):
            evaluate()
    finally:
        bar.close()
    return history


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in `module` (only those with requires_grad if `trainable_only`)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
