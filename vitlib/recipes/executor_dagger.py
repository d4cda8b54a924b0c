"""Recipe for chapter 12's imitation curves: from thin data, more expert data (behaviour cloning) against the
learner's own states labelled by the expert (DAgger, Ross et al., 2011), over seeds.

    start      behaviour cloning on START_EPISODES expert episodes (START_STEPS steps): the thin-data policy
    bc         ROUNDS rounds, each adding ROUND_STATES more states of *expert* episodes, then ROUND_STEPS steps on
               all data
    dagger     ROUNDS rounds, each rolling out the mixture policy (the expert acts with probability BETA, the current
               policy otherwise; Ross et al.'s beta pi* + (1 - beta) pi) on training tasks until it has visited
               ROUND_STATES states, labelling each with the expert's action, then ROUND_STEPS steps on all data

Both get the same labelling budget, the expert's answers to ROUND_STATES states a round; they differ only in whose
states are asked about.
Every curve point is the greedy success on N_EVAL held-out-composition episodes (fixed env seeds, none used in
training). A seed fixes the initial weights, the batches and the sampled actions; the expert data of a round are
the same for every seed. About 10 minutes a run on one core.

    python -m vitlib.recipes.executor_dagger --save --workers 2   # writes data/results/executor-dagger.json
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import results_json
from ..executor import ExecutorConfig, InstructionExecutor, clone, collect, dagger, success_rate
from ..utils import seed_everything

NAME = "executor-dagger"
SEEDS = (0, 1, 2)
START_EPISODES, START_STEPS = 600, 1000
ROUNDS, ROUND_STATES, ROUND_STEPS = 3, 1200, 500
BETA = 0.5
N_EVAL, EVAL_SEED = 200, 2_000_000
METHODS = ("bc", "dagger")
CHECK = {"method": "dagger", "seed": 0, "rounds": 1, "episodes": 5, "start_steps": 20, "states": 30,
         "steps": 20, "n_eval": 5}   # a unit test's run


def heldout(model, n_eval: int = N_EVAL) -> float:
    return success_rate(model, "heldout", n_eval, EVAL_SEED)["success"]


def thin_policy(seed: int, episodes: int = START_EPISODES, steps: int = START_STEPS):
    """(the behaviour-cloned policy, its expert data): the common start of every curve."""
    data = collect(episodes, "train", seed=0)
    seed_everything(seed)
    model = InstructionExecutor(ExecutorConfig())
    clone(model, data, steps, seed=seed)
    return model, data


def run_one(method: str, seed: int, rounds: int = ROUNDS, episodes: int = START_EPISODES,
            start_steps: int = START_STEPS, states: int = ROUND_STATES, steps: int = ROUND_STEPS,
            n_eval: int = N_EVAL) -> dict:
    """One curve: {"method", "seed", "points": [{"states", "heldout"}, ...] (the thin start, then each round),
    "seconds"}."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    start = time.process_time()
    model, data = thin_policy(seed, episodes, start_steps)
    points = [{"states": len(data["actions"]), "heldout": heldout(model, n_eval)}]
    _, curve = dagger(model, data, rounds, states, steps, seed, visits="learner" if method == "dagger" else "expert",
                      evaluate=lambda m: {"heldout": heldout(m, n_eval)}, beta=BETA)
    points += [{"states": c["states"], "heldout": c["heldout"]} for c in curve]
    return {"method": method, "seed": seed, "points": points, "seconds": round(time.process_time() - start, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--workers", type=int, default=1, help="processes, one thread each")
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    jobs = [{"method": m, "seed": s} for m in args.methods for s in args.seeds]
    runs = results_json.run_all(run_one, jobs, workers=args.workers)
    for run in runs:
        print(run["method"], run["seed"], [(p["states"], p["heldout"]) for p in run["points"]])
    results = {"runs": runs, "check": run_one(**CHECK)}
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {"seeds": args.seeds, "start": [START_EPISODES, START_STEPS],
                    "rounds": [ROUNDS, ROUND_STATES, ROUND_STEPS], "beta": BETA,
                    "n_eval": N_EVAL, "device": "cpu", "threads": 1}
        print("wrote", results_json.save(NAME, settings, results, command))
    return results


if __name__ == "__main__":
    main()
