"""Recipe for chapter 11's ablation table: what each of LLaVA's choices is worth, at one training budget, over seeds.

Every variant trains with ``vlm_shapes.train`` for STAGE1_STEPS + STEPS steps (the same data, batches and
schedules), differing from the full recipe in one thing:

    full         stage 1 (projector) then stage 2 (projector + LM); MLP projector; 9 patch tokens
    no_stage1    stage 2 only: the projector starts random when the LM starts learning
    linear       a linear projector W V instead of the MLP (LLaVA before 1.5)
    lm_frozen    stage 2 tunes the projector alone: the LM stays gpt-shapes
    pooled       one image token, the mean of the 9 patch tokens (chapter 07's pooled operators)

Each run records accuracy by question type on N_VAL validation scenes (what a reader may choose by) and N_TEST
test scenes, the parameters that train, and the CPU time (one thread). About 3 minutes a run on one core.

    python -m vitlib.recipes.vlm_ablation --save --workers 2     # writes data/results/vlm-ablation.json
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import results_json, vlm_shapes

NAME = "vlm-ablation"
SEEDS = (0, 1, 2)
STAGE1_STEPS, STEPS = 150, 600
N_VAL, N_TEST = 200, 300
VARIANTS = {
    "full": {},
    "no_stage1": {"stage1_steps": 0},
    "linear": {"cfg": {"projector": "linear"}},
    "lm_frozen": {"freeze_lm": True},
    "pooled": {"cfg": {"image_pool": "mean"}},
}
CHECK = {"variant": "pooled", "seed": 0, "stage1_steps": 20, "steps": 40}   # what a unit test recomputes


def run_one(variant: str, seed: int, stage1_steps: int | None = None, steps: int = STEPS) -> dict:
    """One CPU run of ``variant`` at ``seed``: {"variant", "seed", "steps", "trainable", "train_seconds", "val",
    "test"}; ``stage1_steps`` defaults to STAGE1_STEPS (0 for no_stage1, whatever is passed)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    options = dict(VARIANTS[variant])
    cfg = vlm_shapes.config(**options.pop("cfg", {}))
    stage1 = options.pop("stage1_steps", STAGE1_STEPS if stage1_steps is None else stage1_steps)
    start = time.process_time()
    model, _ = vlm_shapes.train(steps=steps, seed=seed, device="cpu", progress=False, stage1_steps=stage1,
                                cfg=cfg, **options)
    seconds = time.process_time() - start
    trainable = sum(p.numel() for p in model.projector.parameters())
    trainable += 0 if options.get("freeze_lm") else sum(p.numel() for p in model.lm.parameters())
    return {"variant": variant, "seed": seed, "steps": [stage1, steps], "trainable": trainable,
            "train_seconds": round(seconds, 1), "val": vlm_shapes.accuracy(model, "val", N_VAL),
            "test": vlm_shapes.accuracy(model, "test", N_TEST)}


def summary(runs: list[dict], split: str = "test") -> dict[str, dict[str, tuple[float, float]]]:
    """{variant: {question type: (mean, standard deviation over seeds)}} of the accuracies of ``split``."""
    return results_json.accuracy_summary(runs, "variant", split)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="LLaVA's choices ablated on ShapesWorld (chapter 11).")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    jobs = [{"variant": v, "seed": s} for v in args.variants for s in args.seeds]
    runs = results_json.run_all(run_one, jobs, workers=args.workers)
    for variant, row in summary(runs).items():
        print(f"{variant:10s}", " ".join(f"{t} {m:.3f}±{s:.3f}" for t, (m, s) in row.items()))
    results = {"runs": runs, "check": run_one(**CHECK)}
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {"seeds": args.seeds, "stage1_steps": STAGE1_STEPS, "steps": STEPS, "n_val": N_VAL,
                    "n_test": N_TEST, "variants": VARIANTS, "device": "cpu", "threads": 1}
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
