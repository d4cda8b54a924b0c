"""The ablation of the course CLIP (chapter 05): temperature, loss and the one-object pool, each row over seeds.

Every row is ``clip_shapes.train`` with one change, at a third of the main run's pairs (200 steps of 64 pairs;
one SigLIP row trains three times longer),
trained with seeds 0, 1, 2 (the seed draws the training pools' captions, the initial weights and the batches) and
evaluated by ``clip_shapes.evaluate``. The chapter shows the mean and the spread over seeds; a difference smaller
than the spread is not a finding.

    python -m vitlib.recipes.clip_ablation     # 19 minutes on one core of a busy 2-core machine; writes RESULTS

The JSON holds every seed's metrics, the command that made it, and a check: the first row trained for
``CHECK_STEPS`` steps with seed 0, whose metrics a unit test recomputes. It is written after every run, and an
interrupted command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import torch

from . import clip_shapes, results_json
from .cli import train_and_evaluate

RESULTS = results_json.path("clip-ablation")
STEPS, BATCH_SIZE, SEEDS, CHECK_STEPS = 200, 64, (0, 1, 2), 20
ROWS = {
    "InfoNCE, tau learnt (from 0.07)": {},
    "InfoNCE, tau = 0.07 fixed": dict(temperature=0.07),
    "InfoNCE, tau = 0.01 fixed": dict(temperature=0.01),
    "InfoNCE, tau = 1 fixed": dict(temperature=1.0),
    "hinge, margin 0.2": dict(loss="hinge"),
    "SigLIP, scale 10, bias -10 (paper)": dict(loss="siglip"),
    "SigLIP, scale 10, bias -ln 63": dict(loss="siglip", siglip_bias=-math.log(BATCH_SIZE - 1)),
    "SigLIP, scale 10, bias -10, 600 steps": dict(loss="siglip", steps=600),
    "InfoNCE, no one-object pool": dict(single_share=0.0),
}
COLUMNS = ("zero_shot_test", "zero_shot_heldout", "text_to_image_R@1", "text_to_image_R@5", "image_to_text_R@1",
           "image_to_text_R@5", "tau")


def run_row(change: dict, seed: int, steps: int = STEPS) -> dict:
    """One row, one seed, on the CPU: the metrics of ``clip_shapes.evaluate`` (without the timing); a row may set
    its own number of steps."""
    options = {"steps": steps, "batch_size": BATCH_SIZE, **change}
    _, _, metrics = train_and_evaluate(clip_shapes, seed=seed, device="cpu", eval_every=None, progress=False,
                                       **options)
    metrics.pop("train_seconds")
    return metrics


def summary(runs: list[dict], column: str) -> tuple[float, float]:
    """(mean, sample standard deviation) of a column over a row's seeds."""
    values = [r[column] for r in runs]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run(seeds=SEEDS, steps: int = STEPS, rows: dict | None = None, out: Path | None = None) -> dict:
    """The check, then every row for every seed: the JSON's content. With ``out``, the results so far are written
    there after each run, and runs already there (same steps and seeds) are not repeated."""
    torch.set_num_threads(1)
    rows = ROWS if rows is None else rows
    first = next(iter(rows))
    header = {"command": "python -m vitlib.recipes.clip_ablation", "steps": steps, "batch_size": BATCH_SIZE,
              "seeds": list(seeds)}
    results = load(out) if out is not None and Path(out).exists() else {}
    if any(results.get(k) != v for k, v in header.items()):
        results = {**header, "check": {"row": first, "seed": 0, "steps": CHECK_STEPS,
                                       "metrics": run_row(rows[first], 0, CHECK_STEPS)}, "rows": {}}
    for name, change in rows.items():
        done = results["rows"].setdefault(name, [])
        for seed in seeds[len(done):]:
            done.append(run_row(change, seed, steps))
            if out is not None:
                Path(out).write_text(json.dumps(results, indent=1) + "\n")
    return results


def load(path: Path = RESULTS) -> dict:
    """The shipped results."""
    return json.loads(Path(path).read_text())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run(out=args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
