"""Recipe for chapter 06's comparisons over seeds: ITM trained with random, hard (BLIP's) and hard + swap
negatives, each continued from the shared warm-up ``vlp-shapes-warmup`` and measured on minimal pairs, on the
attribute-swap benchmark (``vitlib.binding``) and on text -> image retrieval.

    variant          ITM negatives                                        ITC
    random           one random caption per image, one random image per caption     InfoNCE
    hard             drawn from softmax(s_ij / tau), the positive excluded (BLIP)    InfoNCE
    hard+swaps       hard, plus (I_i, T'_i) and (I'_i, T_i): T'_i, I'_i the          InfoNCE
                     caption and image of I_i's scene with two attributes swapped
    hard+swaps+itc   as hard+swaps                                                  NegCLIP: T'_i and I'_i
                                                                                    join the softmaxes

Every variant of one seed sees the same batches, masks and sampled negatives (``vlp_shapes.train``); only what is
named above differs. Twelve runs of a few minutes each on one CPU core: chapter 06 loads their results:

    python -m vitlib.recipes.vlp_swaps      # writes data/results/vlp-swaps.json
    python -m vitlib.recipes.vlp_swaps --steps 1500 --variants hard hard+swaps --out data/results/vlp-swaps-long.json

The second, five times longer, asks whether swap negatives need more steps rather than another model.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
from pathlib import Path

import torch

from . import cli, results_json
from . import vlp_shapes as base
from .. import zoo
from ..binding import swap_accuracy, swap_set
from ..metrics import wilson_interval
from ..utils import Timer
from ..vlp import VLPModel

NAME = base.NAME            # the checkpoint every run starts from
STEPS = base.COPY_STEPS     # steps of each run after the warm-up
SEEDS = (1, 2, 3)
VARIANTS = {"random": {"negatives": "random"}, "hard": {"negatives": "hard"},
            "hard+swaps": {"negatives": "hard", "swaps": "itm"},
            "hard+swaps+itc": {"negatives": "hard", "swaps": "itm+itc"}}
N_SWAPS = 300               # test scenes per swap type
RESULTS = results_json.path("vlp-swaps")
RESULTS_LONG = results_json.path("vlp-swaps-long")   # 1500 steps, hard and hard+swaps
world, config = base.world, base.config


def train(variant: str = "hard+swaps", steps: int = STEPS, seed: int = SEEDS[0], device="cpu", progress: bool = False,
          stop_after: int | None = None):
    """One run: the warm-up checkpoint continued for ``steps`` steps as ``variant`` -> (model, history)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    warm = zoo.load(NAME, device=device)
    return base.train(steps=steps, model=copy.deepcopy(warm), seed=seed, device=device, progress=progress,
                      stop_after=stop_after, **VARIANTS[variant])


def scores(model: VLPModel) -> dict:
    """{"itc": cos(v, t), "itm": p(match)}: score functions of row-aligned (images, texts), as ``swap_accuracy``
    takes them."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def itc(images, texts):
        ids, mask = base.tokenize(texts, device)
        v, t = model.encode_image(images.to(device))[0], model.encode_text(ids, mask)[0]
        return torch.cosine_similarity(v, t, dim=-1)

    @torch.no_grad()
    def itm(images, texts):
        ids, mask = base.tokenize(texts, device)
        return base.itm_probability(model, images.to(device), ids, mask)

    return {"itc": itc, "itm": itm}


def evaluate(model: VLPModel) -> dict:
    """Minimal pairs ([right, n] per attribute, for ITC and ITM), swap accuracies (text and image, with Wilson
    intervals) for ITC and ITM, and text -> image R@1 among 1000 test scenes, by ITC and after ITM re-ranking."""
    test = base.distinct_scenes(600, "test")
    outcomes = base.minimal_pair_outcomes(model, test, base.minimal_pairs(test))
    swaps = swap_set(world(), N_SWAPS, detail="full")
    found = base.itc_itm_retrieval(model, base.distinct_scenes(1000, "test"))
    right_of_n = {kind: {a: [int(r.sum()), len(r)] for a, r in by.items()} for kind, by in outcomes.items()}
    return {"minimal_pairs": right_of_n,
            "swaps": {kind: swap_accuracy(f, swaps) for kind, f in scores(model).items()},
            "itc_r1": found["itc_r1"], "rerank_r1": found["rerank_r1"]}


def summary(values: list[float]) -> dict:
    """Mean and spread (sample standard deviation; min and max) of one number over seeds."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n_seeds": len(values)}


def pooled(runs: list[dict], *path) -> tuple[float, tuple[float, float]]:
    """An accuracy pooled over seeds (right and n added up) with its Wilson interval; ``path`` leads to [right, n]
    inside each run's minimal_pairs."""
    right = sum(_get(r, path)[0] for r in runs)
    n = sum(_get(r, path)[1] for r in runs)
    return right / n, wilson_interval(right, n)


def _get(d: dict, path):
    for key in path:
        d = d[key]
    return d


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge", type=Path, nargs="+", help="combine files written with --seeds (one per seed)")
    args = parser.parse_args(argv)
    if args.merge:
        parts = [load(p) for p in args.merge]
        words, kept = parts[0]["command"].split(), []
        for w in words:   # the shared command: each part's "--seeds N" and "--out PATH" left out
            if kept and kept[-1] in ("--seeds", "--out"):
                kept.pop()
            else:
                kept.append(w)
        seeds = ", ".join(f"--seeds {s}" for p in parts for s in p["seeds"])
        result = {**parts[0], "seeds": [s for p in parts for s in p["seeds"]],
                  "command": " ".join(kept) + f" (run as {seeds}, then --merge)",
                  "runs": {v: {s: r for p in parts for s, r in p["runs"][v].items()} for v in parts[0]["runs"]}}
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", args.out)
        return
    torch.set_num_threads(1)   # reproducible, and faster for a model this small
    runs = {v: {} for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            with Timer() as timer:
                model, history = train(variant, args.steps, seed)
            runs[variant][str(seed)] = {**evaluate(model), "train_seconds": round(timer.seconds, 1),
                                        "losses": {k: [round(x, 5) for x in v] for k, v in history.values.items()}}
            swaps = runs[variant][str(seed)]["swaps"]["itm"]
            print(f"seed {seed} {variant:>15}: {timer.seconds:.0f} s; ITM swaps (text)",
                  {a: round(swaps[a]["text"], 3) for a in swaps}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m vitlib.recipes.vlp_swaps " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command.strip(), "warm_up": NAME, "steps": args.steps, "seeds": args.seeds,
              "n_swaps": N_SWAPS, "torch": torch.__version__, "threads": 1, "runs": runs}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


def load(path: Path = RESULTS) -> dict:
    """The shipped results (see ``main``)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing; make it with: python -m vitlib.recipes.vlp_swaps")
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    main()
