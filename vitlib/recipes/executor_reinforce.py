"""Recipe for chapter 12's policy-gradient curves: REINFORCE (Williams, 1992) from the thin behaviour-cloned policy,
the reward alone as teacher, over seeds.

    start   behaviour cloning on START_EPISODES expert episodes (START_STEPS steps): the thin-data policy of
            ``executor_dagger``, the same for every run
    head    UPDATES REINFORCE steps on the action head W only (the cloned representation h kept), lr LR["head"]
    all     UPDATES REINFORCE steps on every weight, lr LR["all"]

Each step samples BATCH episodes of training tasks from pi; the baseline is the batch's mean return. Every EVERY
steps, and at the start: the success of the sampled policy (the J that REINFORCE climbs) on N_EVAL training and
N_EVAL held-out episodes, and the greedy policy's on the held-out ones (fixed env seeds, none used in training).
A seed fixes the sampled actions and the training episodes. About 12 minutes a run on one core.

    python -m vitlib.recipes.executor_reinforce --save --workers 2   # writes data/results/executor-reinforce.json
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import results_json
from .executor_dagger import thin_policy
from .executor_shapes import EVAL_SEEDS
from ..executor import success_rate
from ..policy_gradient import reinforce, sampled_success

NAME = "executor-reinforce"
SEEDS = (0, 1, 2)
START_EPISODES, START_STEPS = 200, 1000
UPDATES, BATCH, EVERY = 600, 64, 150
LR = {"head": 3e-3, "all": 1e-5}
N_EVAL = 256
TRAIN_SEED = 3_000_000          # the training episodes' env seeds start here, apart from the evaluation's
CHECK = {"train": "head", "seed": 0, "updates": 2, "batch": 3, "every": 1, "n_eval": 4, "episodes": 5,
         "start_steps": 10}     # a unit test's run


def evaluate(model, n_eval: int = N_EVAL) -> dict:
    """Sampled success on training and held-out tasks, greedy success on held-out ones."""
    return {"sampled_train": sampled_success(model, "train", n_eval, EVAL_SEEDS["train"])["success"],
            "sampled_heldout": sampled_success(model, "heldout", n_eval, EVAL_SEEDS["heldout"])["success"],
            "greedy_heldout": success_rate(model, "heldout", n_eval, EVAL_SEEDS["heldout"])["success"]}


def run_one(train: str, seed: int, updates: int = UPDATES, batch: int = BATCH, every: int = EVERY,
            n_eval: int = N_EVAL, episodes: int = START_EPISODES, start_steps: int = START_STEPS) -> dict:
    """One curve: {"train", "seed", "points": [{"update", "sampled_train", "sampled_heldout", "greedy_heldout"}],
    "returns": the mean return of each update's episodes, "seconds"}."""
    if train not in LR:
        raise ValueError(f"unknown train {train!r}; allowed: {', '.join(LR)}")
    start = time.process_time()
    model, _ = thin_policy(0, episodes, start_steps)
    points = [{"update": 0, **evaluate(model, n_eval)}]
    history = reinforce(model, updates, batch, lr=LR[train], seed=TRAIN_SEED + 100_000 * seed, baseline="mean",
                        train=train, evaluate=lambda m: evaluate(m, n_eval), every=every)
    points += [{"update": u + 1, **{k: h[k] for k in points[0] if k != "update"}}
               for u, h in enumerate(history) if "greedy_heldout" in h]
    return {"train": train, "seed": seed, "points": points, "returns": [round(h["return"], 4) for h in history],
            "seconds": round(time.process_time() - start, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--train", nargs="+", default=list(LR), choices=list(LR))
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    jobs = [{"train": t, "seed": s} for t in args.train for s in args.seeds]
    runs = results_json.run_all(run_one, jobs, workers=args.workers)
    for run in runs:
        print(run["train"], run["seed"], [(q["update"], q["sampled_heldout"], q["greedy_heldout"])
                                          for q in run["points"]])
    results = {"runs": runs, "check": run_one(**CHECK)}
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {"seeds": args.seeds, "start": [START_EPISODES, START_STEPS], "updates": UPDATES,
                    "batch": BATCH, "every": EVERY, "lr": LR, "baseline": "mean", "n_eval": N_EVAL,
                    "device": "cpu", "threads": 1}
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
