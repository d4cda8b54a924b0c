"""Recipe: how the tiny GPT learns word order, four ways, over seeds (chapter 03).

For each position mode of ``vitlib.position_variants`` (none, learned, sinusoidal, rope) and each seed, pre-train
``gpt_with_positions(gpt_shapes.config(), mode)`` exactly as ``gpt_shapes.train`` trains the course GPT (same
documents, batches, AdamW, one-cycle schedule, clipping), only shorter (``STEPS``), and record the validation loss
L = ln(perplexity), in nats per token, every ``EVAL_EVERY`` steps. A seed fixes the data order and the initial
weights, which are the same in every mode.

    python -m vitlib.recipes.gpt_positions --save --workers 12     # writes data/results/gpt-positions.json
"""

from __future__ import annotations

import argparse
import math

from . import gpt_shapes, results_json
from ..position_variants import POSITION_MODES, gpt_with_positions

NAME = "gpt-positions"
STEPS, EVAL_EVERY, SEEDS = 600, 100, (0, 1, 2)
CHECK = {"mode": "rope", "seed": 0, "steps": 20, "eval_every": 20}   # what a unit test recomputes


def run_one(mode: str, seed: int, steps: int = STEPS, eval_every: int = EVAL_EVERY) -> dict:
    """One pre-training run on the CPU: {"mode", "seed", "steps": [...], "val_loss": [...]} (nats per token)."""
    _, history = gpt_shapes.train(steps=steps, seed=seed, device="cpu", progress=False, eval_every=eval_every,
                                  build=lambda cfg: gpt_with_positions(cfg, mode))
    return {"mode": mode, "seed": seed, "steps": history.steps("val_perplexity"),
            "val_loss": [math.log(p) for p in history["val_perplexity"]]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Position-encoding ablation of the tiny GPT (chapter 03).")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--modes", nargs="+", default=list(POSITION_MODES), choices=POSITION_MODES)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    jobs = [{"mode": m, "seed": s, "steps": args.steps} for m in args.modes for s in args.seeds]
    runs = results_json.run_all(run_one, jobs, args.workers)
    for r in runs:
        print(f"{r['mode']:10s} seed {r['seed']}: validation loss {r['val_loss'][-1]:.4f}")
    if args.save:
        settings = {"steps": args.steps, "eval_every": EVAL_EVERY, "seeds": args.seeds, "device": "cpu",
                    "config": vars(gpt_shapes.config())}
        print("wrote", results_json.save(NAME, settings, {"runs": runs, "check": run_one(**CHECK)}))
    return {"runs": runs}


if __name__ == "__main__":
    main()
