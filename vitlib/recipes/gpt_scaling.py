"""Recipe for chapter 13's mini scaling study: the course GPT's validation loss against its size and its data.

Every run pre-trains a GPT exactly as ``gpt_shapes.train`` does (documents, batches, AdamW, one-cycle schedule,
clipping; ``STEPS`` steps of 32 documents) and records the validation loss L = ln(perplexity) in nats per token
every ``EVAL_EVERY`` steps; a run's L is the lowest of them (validation, not test, picks the step).

    size   SIZES (d_model, n_layers, n_heads), every one on all N_TRAIN documents: L against N, the non-embedding
           parameters (``vitlib.scaling``)
    data   the course GPT's size (128, 3, 4) on n documents, n in DATA (the smaller sets seen for more epochs):
           L against D, the training tokens

``vitlib.scaling.fit_power_law`` fits L = E + A x^(-alpha) to the mean over SEEDS of each point. About 25 minutes
on one core.

    python -m vitlib.recipes.gpt_scaling --save --workers 2     # writes data/results/gpt-scaling.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from . import gpt_shapes, results_json
from ..scaling import fit_power_law, non_embedding_parameters
from ..transformer import GPTConfig

NAME = "gpt-scaling"
STEPS, EVAL_EVERY, SEEDS = 1200, 100, (0, 1, 2)
SIZES = ((16, 1, 2), (32, 1, 4), (32, 2, 4), (64, 2, 4), (96, 3, 4), (128, 3, 4))
DATA = (375, 750, 1500, 3000, 6000, 12000)
CHECK = {"kind": "size", "value": [16, 1, 2], "seed": 0, "steps": 20, "eval_every": 10}   # a unit test's run


def config(d_model: int, n_layers: int, n_heads: int) -> GPTConfig:
    """The course GPT's config with another width, depth and head count (d_ff = 4 d_model)."""
    base = gpt_shapes.config()
    return GPTConfig(vocab_size=base.vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                     max_len=base.max_len, activation=base.activation, norm_eps=base.norm_eps)


def run_one(kind: str, value, seed: int, steps: int = STEPS, eval_every: int = EVAL_EVERY) -> dict:
    """One run on the CPU: {"kind", "value", "seed", "N", "D", "val_loss" (the lowest), "curve", "seconds"}."""
    if kind not in ("size", "data"):
        raise ValueError(f"unknown kind {kind!r}; allowed: size, data")
    size, n_train = (tuple(value), gpt_shapes.N_TRAIN) if kind == "size" else ((128, 3, 4), int(value))
    cfg = config(*size)
    start = time.process_time()
    model, history = gpt_shapes.train(steps=steps, seed=seed, device="cpu", progress=False, cfg=cfg,
                                      n_train=n_train, eval_every=eval_every)
    tokens = sum(len(s) - 1 for s in gpt_shapes.encode(gpt_shapes.texts(n_train, "train", seed, gpt_shapes.world())))
    curve = [math.log(p) for p in history["val_perplexity"]]
    return {"kind": kind, "value": list(value) if kind == "size" else n_train, "seed": seed,
            "N": non_embedding_parameters(model), "D": tokens, "val_loss": min(curve), "curve": curve,
            "seconds": round(time.process_time() - start, 1)}


def fits(runs: list[dict]) -> dict[str, dict]:
    """The power laws L(N) (size runs) and L(D) (data runs) fitted to the mean loss over seeds of each point, and
    the points themselves: {kind: {"x", "loss", "spread", **fit_power_law}}. A point is one size or one number of
    documents; its x is N, or the mean over seeds of D (each seed draws its own documents)."""
    out = {}
    for kind, x_key in (("size", "N"), ("data", "D")):
        points = {}
        for r in (r for r in runs if r["kind"] == kind):
            points.setdefault(str(r["value"]), []).append((r[x_key], r["val_loss"]))
        rows = sorted((float(np.mean([x for x, _ in p])), float(np.mean([v for _, v in p])),
                       float(np.std([v for _, v in p]))) for p in points.values())
        if len(rows) >= 3:
            x, loss, spread = (list(col) for col in zip(*rows))
            out[kind] = {"x": x, "loss": loss, "spread": spread, **fit_power_law(x, loss)}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    jobs = [{"kind": "size", "value": list(s), "seed": seed} for s in SIZES for seed in args.seeds] + \
        [{"kind": "data", "value": n, "seed": seed} for n in DATA for seed in args.seeds]
    runs = results_json.run_all(run_one, jobs, workers=args.workers)
    laws = fits(runs)
    for kind, law in laws.items():
        print(f"L({'N' if kind == 'size' else 'D'}) = {law['E']:.3f} + {law['A']:.3g} x^-{law['alpha']:.3f}"
              f"  (rmse {law['rmse']:.4f})")
    results = {"runs": runs, "fits": laws, "check": run_one(**CHECK)}
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {"seeds": args.seeds, "steps": STEPS, "eval_every": EVAL_EVERY, "sizes": [list(s) for s in SIZES],
                    "data": list(DATA), "device": "cpu", "threads": 1}
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
