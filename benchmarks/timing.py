"""Timing shared by the benchmarks: each function is timed in rounds, in turn, and gets the median of its rounds,
so that a busy machine slows all of them alike; the ratios the benchmarks report are taken within one run."""

import statistics
import time

import torch


def timed(fn, device: torch.device, number: int = 1) -> float:
    """Seconds per call of ``fn``, averaged over ``number`` calls in a row."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / number


def medians(fns: dict, device: torch.device, repeats: int, sample_seconds: float = 0.02) -> dict:
    """Median seconds per call of each function, calling them in turn for `repeats` rounds (after one warm-up).
    Each sample repeats a call until it lasts about `sample_seconds`, so that short calls are timed above the
    clock's and the scheduler's noise; the order rotates, so that no function always runs after the same one."""
    times = {name: [] for name in fns}
    first = min(timed(fn, device) for fn in fns.values())  # warm-up (kernel selection, allocator), and a first time
    number = max(1, round(sample_seconds / first))
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:   # each round starts with another function
            times[name].append(timed(fns[name], device, number))
    return {name: statistics.median(t) for name, t in times.items()}
