"""Recipe for chapter 10's first comparison: seed 001's LSTM captioner (attention fusion, vitlib.lstm_captioner)
against seed 004's transformer captioner (cross-attention, vitlib.captioner), trained alike, over seeds.

Both read the frozen clip-shapes patch tokens of the biased world and train with ``captioner_shapes.train`` at the
settings the chapter trains them live (``LIVE``: STEPS steps of 64 captions from N_TRAIN scenes, learning rate LR);
a seed fixes the initial weights and the batch order. Each run records the training loss (mean of its last 20
steps), greedy captions' BLEU-4 against 5 references on the chapter's N_TEST test scenes, CHAIR_i, and the CPU time
(one thread). About 25 s a run: six runs take under 3 minutes on one core.

    python -m vitlib.recipes.captioner_compare --save     # writes data/results/captioner-compare.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from . import captioner_shapes, results_json
from ..captioner import CaptionerConfig
from ..lstm_captioner import LSTMCaptionerConfig
from ..metrics import bleu, chair
from ..utils import count_parameters

NAME = "captioner-compare"
SEEDS = (0, 1, 2)
STEPS, N_TRAIN, LR, N_TEST = 400, 5000, 3e-3, 300
LIVE = {"steps": STEPS, "n_train": N_TRAIN, "lr": LR}   # what the chapter passes to captioner_shapes.train


def configs() -> dict:
    """{"lstm": LSTMCaptionerConfig, "transformer": CaptionerConfig}: the chapter's two small captioners."""
    vocab = captioner_shapes.world().tokenizer.vocab_size
    return {"lstm": LSTMCaptionerConfig(vocab_size=vocab, max_len=40, d_image=64, d_embed=64, d_hidden=128),
            "transformer": CaptionerConfig(vocab_size=vocab, max_len=40, d_model=64, n_heads=4, n_layers=2,
                                           d_image=64)}


def run_one(arm: str, seed: int) -> dict:
    """One CPU run of ``arm`` ("lstm" or "transformer") at ``seed``, scored on the first N_TEST test scenes."""
    cfg = configs()[arm]
    start = time.process_time()
    model, history = captioner_shapes.train(seed=seed, cfg=cfg, eval_every=None, progress=False, device="cpu",
                                            **LIVE)
    seconds = time.process_time() - start
    scenes, tokens = captioner_shapes.scene_tokens("test", N_TEST)
    texts = captioner_shapes.captions(model, tokens)
    return {"arm": arm, "seed": seed, "parameters": count_parameters(model), "train_seconds": round(seconds, 1),
            "final_loss": statistics.mean(history["loss"][-20:]),
            "bleu": bleu(texts, captioner_shapes.references(scenes)),
            "chair_i": chair(texts, scenes, captioner_shapes.world())[0]}


def summary(runs: list[dict]) -> dict:
    """{arm: {metric: (mean, standard deviation over seeds)}} for final_loss, bleu, chair_i, train_seconds."""
    out = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        out[arm] = {k: (statistics.mean(r[k] for r in mine),
                        statistics.stdev(r[k] for r in mine) if len(mine) > 1 else 0.0)
                    for k in ("final_loss", "bleu", "chair_i", "train_seconds")}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="The LSTM and transformer captioners of chapter 10, over seeds.")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = [run_one(arm, seed) for arm in configs() for seed in args.seeds]
    for arm, row in summary(runs).items():
        print(arm, {k: f"{m:.3f} ± {s:.3f}" for k, (m, s) in row.items()})
    if args.save:
        command = " ".join(["python -m", __spec__.name, *(sys.argv[1:] if argv is None else argv)])
        settings = {**LIVE, "n_test": N_TEST, "seeds": args.seeds, "device": "cpu", "threads": 1,
                    "configs": {arm: vars(cfg) for arm, cfg in configs().items()}}
        print("wrote", results_json.save(NAME, settings, {"runs": runs}, command))
    return {"runs": runs}


if __name__ == "__main__":
    main()
