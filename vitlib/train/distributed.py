"""Training on several processes: what chapter 03's loop, `vitlib.train.train`, does under `torch.distributed`.

With W processes (ranks), every rank builds the same seeded data stream, so every rank holds the same global batch
of B examples; rank r keeps the examples [r B/W, (r + 1) B/W) (DistributedSampler's equal split, made batch by
batch), cut into K micro-batches when asked (`launch`). The model is wrapped in DistributedDataParallel, which
averages the gradients over the ranks. For that average to be the gradient of the global batch's loss, each piece's
loss L_rk is weighted by its share of the count N of the terms the global loss averages over:

    L = sum_{r,k} (n_rk / N) L_rk        n_rk: examples in the piece, or tokens that are not IGNORE_INDEX (count_fn)
    rank r back-propagates W (n_rk / N) L_rk, and DDP's mean over the W ranks gives grad L

This is exact for a loss that is a mean of per-example or per-token terms. A loss over the whole batch (CLIP's
contrastive loss) is not such a mean: it gathers every rank's embeddings with `all_gather` and computes the global
loss on every rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..checks import check_int
from ..utils import to_device

__all__ = ["launch", "rank_and_world", "batch_size", "shard", "all_gather"]


@dataclass(frozen=True)
class Launch:
    """How every call of the loop splits and computes: K micro-batches per rank, and an autocast dtype (or None)."""
    micro_batches: int = 1
    autocast: torch.dtype | None = None


_LAUNCH = Launch()


@contextlib.contextmanager
def launch(micro_batches: int = 1, autocast: torch.dtype | None = None):
    """Within this block the loop cuts each rank's share of a batch into `micro_batches` pieces (gradient
    accumulation: the same global batch in less memory) and computes the loss under `torch.autocast(dtype=...)`.
    `python -m vitlib.train` sets it from `--accumulate` and `--bf16`; recipes need not know."""
    global _LAUNCH
    check_int(micro_batches, "micro_batches")
    if autocast not in (None, torch.bfloat16, torch.float16):
        raise ValueError(f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast!r}")
    previous, _LAUNCH = _LAUNCH, Launch(micro_batches, autocast)
    try:
        yield
    finally:
        _LAUNCH = previous


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes): (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _tensors(batch):
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for v in batch.values():
            yield from _tensors(v)
    elif isinstance(batch, (tuple, list)):
        for v in batch:
            yield from _tensors(v)


def batch_size(batch) -> int:
    """The examples in a batch: the leading size that every tensor in it (nested in dicts, tuples, lists) shares."""
    sizes = sorted({t.shape[0] for t in _tensors(batch) if t.dim() > 0})
    if len(sizes) != 1:
        raise ValueError(f"a batch to split must hold tensors of one leading (batch) size, got sizes {sizes}")
    return sizes[0]


def _slice(batch, start: int, stop: int):
    """The examples [start, stop) of every tensor in the batch; anything else (a number, a string) unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() > 0 else batch
    if isinstance(batch, Mapping):
        return {k: _slice(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple: rebuild field by field
        return type(batch)(*(_slice(v, start, stop) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(v, start, stop) for v in batch)
    return batch


def shard(batch, rank: int, world: int, parts: int = 1) -> list:
    """Rank `rank`'s share of a global batch of B examples, [rank B/W, (rank + 1) B/W), as `parts` equal pieces."""
    B = batch_size(batch)
    if B % (world * parts):
        raise ValueError(f"a global batch of {B} examples does not split evenly over {world} process(es) x {parts} "
                         f"micro-batch(es): expected a multiple of {world * parts}, got {B}")
    size = B // (world * parts)
    return [_slice(batch, (rank * parts + k) * size, (rank * parts + k + 1) * size) for k in range(parts)]


class _AllGather(torch.autograd.Function):
    """y = cat_r x_r along dim 0 (equal shares); every rank computes its own copy of the loss, so
    dL/dx_r = sum over ranks of the slice r of dL/dy (an all-reduce, then this rank's slice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)                                                   # (W N, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]                      # (N, ...)


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` (N, ...) concatenated along dim 0 in rank order, (W N, ...); the gradient of every rank's copy
    of a loss flows back to the rank that computed each part. In one process: `x` itself."""
    return x if rank_and_world()[1] == 1 else _AllGather.apply(x)


def _all_reduce_sum(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Sum of `x` over ranks (on `device`: NCCL reduces GPU tensors only), returned on the CPU."""
    if rank_and_world()[1] == 1:
        return x
    x = x.to(device)
    dist.all_reduce(x)
    return x.cpu()


class _LossOf(nn.Module):
    """`loss_fn(model, batch)` as a module's forward: DDP then sees the whole step, which may call any method of the
    model (`encode_image`, `losses`), not only its forward."""

    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


class ShardedStep:
    """Forward and backward passes over this rank's pieces of each global batch (see the module docstring)."""

    def __init__(self, model: nn.Module, loss_fn: Callable, count_fn: Callable | None, device) -> None:
        self.rank, self.world = rank_and_world()
        self.parts, self.autocast = _LAUNCH.micro_batches, _LAUNCH.autocast
        self.count_fn, self.device = count_fn, torch.device(device)
        self.step = _LossOf(model, loss_fn)
        if self.world > 1:
            ids = None                                # CPU (gloo): DDP takes no device ids
            if self.device.type == "cuda":
                ids = [torch.cuda.current_device() if self.device.index is None else self.device.index]
            self.step = nn.parallel.DistributedDataParallel(self.step, device_ids=ids)

    @staticmethod
    def needed() -> bool:
        """Whether the loop must split batches: several ranks, micro-batches, or autocast."""
        return rank_and_world()[1] > 1 or _LAUNCH.micro_batches > 1 or _LAUNCH.autocast is not None

    def backward(self, batch, scale: float, sync: bool, parse: Callable) -> dict[str, float]:
        """Back-propagate scale * W (n_rk / N) L_rk for each piece k of this rank; all-reduce the gradients only
        when `sync` (the last batch of an accumulation). `parse(out) -> (loss, parts)` reads loss_fn's result.
        Returns the global batch's loss parts, sum_{r,k} (n_rk / N) part_rk."""
        pieces = shard(batch, self.rank, self.world, self.parts)
        counts = torch.tensor([float(self.count_fn(p)) if self.count_fn is not None else float(batch_size(p))
                               for p in pieces], dtype=torch.float64)                         # n_rk
        shares = counts / _all_reduce_sum(counts.sum(), self.device)                          # n_rk / N
        sums: dict[str, float] = {}
        for k, (piece, share) in enumerate(zip(pieces, shares.tolist())):
            reduce = (sync and k == len(pieces) - 1) or self.world == 1   # DDP all-reduces on this backward
            with contextlib.nullcontext() if reduce else self.step.no_sync():
                with torch.autocast(self.device.type, self.autocast, enabled=self.autocast is not None):
                    loss, values = parse(self.step(to_device(piece, self.device)))
                (loss * (scale * self.world * share)).backward()
            sums = {name: sums.get(name, 0.0) + share * v for name, v in values.items()}
        names = list(sums)
        total = _all_reduce_sum(torch.tensor([sums[n] for n in names], dtype=torch.float64), self.device)
        return dict(zip(names, total.tolist()))

    def average_gradients(self) -> None:
        """Average the gradients over ranks by hand: after an accumulation cut short, whose backward passes DDP left
        unsynchronised."""
        if self.world == 1:
            return
        for p in self.step.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world
