"""The one training loop of the course (chapter 03 writes it in the open; every chapter uses it).

    for step in 1..steps:                               # an optimiser step
        for each of `accumulate` batches:               # gradient accumulation
            L = loss_fn(model, batch)                   # a scalar, or {"loss": L, "itc": ..., ...}
            (L / accumulate).backward()
        clip ||grad|| to `clip_grad_norm`; optimizer.step(); scheduler.step(); after_step(model)
        every `eval_every` steps: eval_fn(model) -> {metric: value}, in eval mode, without gradients

Under `torchrun` (an initialised process group) each rank computes the loss on its share of every batch and
DistributedDataParallel averages the gradients; `vitlib.train.distributed` says how the shares are weighted so that
the step is the one-process step.

`param_groups(model, weight_decay)` decides once which parameters decay, as nanoGPT's `configure_optimizers` and
OpenCLIP do: matrices and embedding tables decay; biases, norm scales and scalars such as CLIP's `logit_scale` and
SigLIP's `logit_bias` do not (decaying a temperature would pull it towards 1 for no reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..checks import check_int, check_number, describe
from ..utils import to_device
from .distributed import ShardedStep, rank_and_world
from .history import History

__all__ = ["train", "param_groups", "warmup_cosine"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser groups: parameters with 2 or more dimensions decay, the rest (biases, norms, scalars) do not.

    Only parameters that require gradients are included (a frozen part stays out of the optimiser)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"param_groups expects an nn.Module, got {describe(model)}")
    check_number(weight_decay, "weight_decay", low=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _batch_stream(batches: Iterable, steps: int | None, epochs: int | None):
    """Yield (epoch, batch): `epochs` passes over `batches`, or cycle through it until stopped."""
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


def _loss_parts(out, step: int) -> tuple[torch.Tensor, dict[str, float]]:
    """loss_fn's result -> (the loss to differentiate, every part as a float for the log)."""
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError(f"a loss_fn returning a dict must put the loss to minimise under 'loss', got keys "
                             f"{sorted(out)}")
        loss, parts = out["loss"], {str(k): v for k, v in out.items()}
    else:
        loss, parts = out, {"loss": out}
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a scalar tensor (or a dict with one under 'loss'), got "
                        f"{describe(loss)}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor, got a tensor of shape {tuple(loss.shape)}")
    values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in parts.items()}
    if not math.isfinite(values["loss"]):
        raise RuntimeError(f"loss is {values['loss']} at step {step}: training diverged; "
                           "try a lower learning rate or clip_grad_norm")
    return loss, values


def _check_arguments(model, loss_fn, optimizer, steps, epochs, scheduler, clip_grad_norm, accumulate, log_every,
                     eval_fn, eval_every, after_step, count_fn) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {describe(model)}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {describe(optimizer)}")
    for name, fn, optional in (("loss_fn", loss_fn, False), ("eval_fn", eval_fn, True),
                               ("after_step", after_step, True), ("count_fn", count_fn, True)):
        if not (callable(fn) or (optional and fn is None)):
            raise TypeError(f"{name} must be callable{' or None' if optional else ''}, got {describe(fn)}")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must have a step() method (a torch LR scheduler) or be None, got "
                        f"{describe(scheduler)}")
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps or epochs, got steps={steps!r}, epochs={epochs!r}")
    for name, value in (("steps", steps), ("epochs", epochs), ("eval_every", eval_every)):
        if value is not None:
            check_int(value, name)
    check_int(accumulate, "accumulate")
    check_int(log_every, "log_every")
    if clip_grad_norm is not None:
        check_number(clip_grad_norm, "clip_grad_norm", low=0.0, low_open=True)


def train(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, object], torch.Tensor | Mapping[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    steps: int | None = None,
    epochs: int | None = None,
    device: torch.device | str | None = None,
    scheduler=None,
    clip_grad_norm: float | None = None,
    accumulate: int = 1,
    log_every: int = 10,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: bool = True,
    count_fn: Callable[[object], int | torch.Tensor] | None = None,
) -> History:
    """Train `model` for `steps` optimiser steps or `epochs` passes over `batches`; return its History.

    Each batch is moved to `device` (default: where the model's parameters are) and handed to
    `loss_fn(model, batch)`, which returns a scalar loss or a dict of named parts with the loss to minimise under
    "loss"; every part is logged at every step (averaged over the `accumulate` batches of a step). After each
    optimiser step `scheduler.step()` moves the learning rate and `after_step(model)` may adjust the weights
    (CLIP clamps its logit scale there). With `clip_grad_norm` the gradient norm before clipping is logged as
    "grad_norm". `eval_fn(model) -> dict` runs in eval mode without gradients every `eval_every` steps and after
    the last one. The progress bar shows the mean loss of the last `log_every` steps (rank 0's bar only).

    `count_fn(batch)` says how many terms the loss averages over (the tokens that are not IGNORE_INDEX, say; default:
    the examples): a run split over processes or micro-batches weights each share of a batch by its count, so that
    the step is the one-process step (`vitlib.train.distributed`). It changes nothing in one process.
    """
    _check_arguments(model, loss_fn, optimizer, steps, epochs, scheduler, clip_grad_norm, accumulate, log_every,
                     eval_fn, eval_every, after_step, count_fn)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    model.to(device).train()
    sharded = ShardedStep(model, loss_fn, count_fn, device) if ShardedStep.needed() else None

    from tqdm.auto import tqdm  # lazy: the notebook-aware bar is only needed while training

    total = steps if steps is not None else (
        math.ceil(epochs * len(batches) / accumulate) if hasattr(batches, "__len__") else None)
    show = progress and rank_and_world()[0] == 0      # one bar, rank 0's, under torchrun
    bar = tqdm(total=total, disable=not show, desc="train", mininterval=1.0)  # each redraw is a kernel message
    history, window, step, micro, sums = History(), [], 0, 0, {}
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

    def optimizer_step() -> None:
        nonlocal step, micro, sums, window
        step += 1
        metrics = {k: v / micro for k, v in sums.items()}
        if clip_grad_norm is not None:  # the norm before clipping tells how often clipping bites
            metrics["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        if after_step is not None:
            after_step(model)
        history.log(step, **metrics)
        window = (window + [metrics["loss"]])[-log_every:]
        micro, sums = 0, {}
        bar.update(1)
        if step % log_every == 0:
            shown["loss"] = f"{sum(window) / len(window):.4f}"
            bar.set_postfix(shown, refresh=False)   # shown at the next redraw
        if eval_fn is not None and eval_every is not None and step % eval_every == 0:
            evaluate()

    try:
        optimizer.zero_grad(set_to_none=True)
        for _, batch in _batch_stream(batches, steps, epochs):
            if sharded is None:
                loss, values = _loss_parts(loss_fn(model, to_device(batch, device)), step + 1)
                (loss / accumulate).backward()
            else:   # this rank's share of the batch; the loss parts are the whole batch's
                values = sharded.backward(batch, 1 / accumulate, sync=micro + 1 == accumulate,
                                          parse=lambda out: _loss_parts(out, step + 1))
            micro += 1
            sums = {k: sums.get(k, 0.0) + v for k, v in values.items()}
            if micro == accumulate:
                optimizer_step()
                if step == steps:
                    break
        if micro:  # the last pass ended inside an accumulation: step on what it has
            if sharded is not None:
                sharded.average_gradients()   # DDP skipped the all-reduce, waiting for the accumulation's end
            optimizer_step()
        if eval_fn is not None and (eval_every is None or step % eval_every != 0):
            evaluate()
    finally:
        bar.close()
    return history


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr(s) = lr * min(1, (s + 1) / warmup) * (1 + cos(pi * min(s / steps, 1))) / 2: a linear warm-up over
    ``warmup`` steps inside a cosine decay to 0 at ``steps`` (the diffusion recipes of chapters 08 and 09)."""
    check_int(steps, "steps")
    check_int(warmup, "warmup")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
