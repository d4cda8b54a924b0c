"""Results of multi-seed experiments, shipped as JSON under data/results/ with the command that made them
(chapter 03's ablations; any chapter may use it).

    {"command": "python -m vitlib.recipes.gpt_positions --save", "settings": {...}, "results": {...}}

``run_all`` runs independent jobs (one seed of one setting each) in worker processes with one thread each, so a
many-core machine runs a whole table at once and every job computes what it would compute alone.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "results"


def path(name: str) -> Path:
    """data/results/<name>.json"""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a file name without '/', got {name!r}")
    return RESULTS_DIR / f"{name}.json"


def save(name: str, settings: dict, results: dict, command: str | None = None) -> Path:
    """Write data/results/<name>.json; ``command`` defaults to the command line that runs this process."""
    command = command or "python -m " + " ".join([sys.modules["__main__"].__spec__.name, *sys.argv[1:]])
    out = path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "settings": settings, "results": results}, indent=1) + "\n",
                   encoding="utf-8")
    return out


def load(name: str) -> dict:
    """The dictionary ``save`` wrote: {"command", "settings", "results"}."""
    p = path(name)
    if not p.exists():
        raise FileNotFoundError(f"no results {p}; the module named in the chapter makes them")
    return json.loads(p.read_text(encoding="utf-8"))


def _one_thread(job):
    torch.set_num_threads(1)
    fn, kwargs = job
    return fn(**kwargs)


def run_all(fn: Callable, jobs: list[dict], workers: int = 1) -> list:
    """[fn(**job) for job in jobs], in ``workers`` processes (each with one thread), in the order given."""
    if workers <= 1:
        return [_one_thread((fn, job)) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(_one_thread, [(fn, job) for job in jobs], chunksize=1)


def accuracy_summary(runs: list[dict], key: str, split: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{each run's ``key`` (the operator, the variant): {question type: (mean, standard deviation over its seeds)}}
    of the accuracies in each run's ``split`` record (``vqa.accuracy_by_type``'s form); sd 0.0 for one seed."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name in dict.fromkeys(r[key] for r in runs):
        mine = [r[split] for r in runs if r[key] == name]
        out[name] = {t: (statistics.mean(m[t]["accuracy"] for m in mine),
                         statistics.stdev(m[t]["accuracy"] for m in mine) if len(mine) > 1 else 0.0)
                     for t in mine[0]}
    return out

