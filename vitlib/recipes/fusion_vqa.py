"""Recipe: every fusion operator of chapter 07 on the same VQA task, over seeds (chapter 07's table).

For each operator of ``vitlib.vqa.OPERATORS`` and each seed, ``vqa_shapes.train`` trains that operator and the
answer head on the frozen course CLIP's features (same data, batches, optimiser, schedule and steps for all), and
records accuracy by question type on validation and test, the parameter count and the CPU training time (one
thread). A seed fixes the initial weights and the batch order. Validation ranks the operators (mean accuracy over
every question); ``vqa_shapes.OPERATOR`` is the first, and its seed-0 run is the shipped "vqa-shapes".

    python -m vitlib.recipes.fusion_vqa --save --workers 2     # writes data/results/fusion-vqa.json
"""

from __future__ import annotations

import argparse
import time

import torch

from . import results_json, vqa_shapes
from ..utils import count_parameters
from ..vqa import OPERATORS

NAME = "fusion-vqa"
SEEDS = (0, 1, 2)
CHECK = {"operator": "attention", "seed": 0, "steps": 100}   # what a unit test recomputes


def run_one(operator: str, seed: int, steps: int = vqa_shapes.STEPS) -> dict:
    """One training run on the CPU: {"operator", "seed", "steps", "parameters", "train_seconds", "val", "test"}."""
    start = time.process_time()
    model, _ = vqa_shapes.train(steps=steps, seed=seed, device="cpu", progress=False, operator=operator)
    seconds = time.process_time() - start
    return {"operator": operator, "seed": seed, "steps": steps, "parameters": count_parameters(model),
            "train_seconds": round(seconds, 1),
            "val": vqa_shapes.evaluate_split(model, vqa_shapes.split_data("val")),
            "test": vqa_shapes.evaluate_split(model, vqa_shapes.split_data("test"))}


def summary(runs: list[dict], split: str = "test") -> dict[str, dict[str, tuple[float, float]]]:
    """{operator: {question type: (mean, standard deviation over seeds)}} of the accuracies of ``split``."""
    return results_json.accuracy_summary(runs, "operator", split)


def ranking(runs: list[dict]) -> list[str]:
    """Operators from best to worst by mean validation accuracy over all questions."""
    val = summary(runs, "val")
    return sorted(val, key=lambda op: -val[op]["all"][0])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Fusion operators compared on ShapesWorld VQA (chapter 07).")
    p.add_argument("--steps", type=int, default=vqa_shapes.STEPS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--operators", nargs="+", default=list(OPERATORS), choices=OPERATORS)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    jobs = [{"operator": op, "seed": s, "steps": args.steps} for op in args.operators for s in args.seeds]
    runs = results_json.run_all(run_one, jobs, args.workers)
    for op, row in summary(runs).items():
        print(f"{op:16s}" + " ".join(f"{t} {m:.3f}±{s:.3f}" for t, (m, s) in row.items()))
    print("validation ranking:", ranking(runs))
    if args.save:
        torch.set_num_threads(1)
        settings = {"steps": args.steps, "seeds": args.seeds, "device": "cpu", "threads": 1,
                    "batch_size": vqa_shapes.BATCH_SIZE, "lr": vqa_shapes.LR,
                    "scenes": {"train": vqa_shapes.N_TRAIN, "val": vqa_shapes.N_VAL, "test": vqa_shapes.N_TEST}}
        check = run_one(**CHECK)
        print("wrote", results_json.save(NAME, settings, {"runs": runs, "check": check}))
    return {"runs": runs}


if __name__ == "__main__":
    main()
