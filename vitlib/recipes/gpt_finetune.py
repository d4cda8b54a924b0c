"""Recipe: pre-training versus fine-tuning, run to convergence over seeds; and what longer pre-training buys
(chapter 03).

Fine-tuning. The request "draw k objects." (k = 1, 2, 3) is answered by a caption of a scene with k objects
(``gpt_shapes.instruction_examples``). A seed draws the N_EXAMPLES labelled examples and their order; the model is
either the pre-trained course GPT (data/zoo/gpt-shapes) or a fresh one of the same size (its weights drawn from the
seed). AdamW, lr 1e-3, batches of 16, the loss on the response only. Every EVAL_EVERY steps we sample (temperature 1)
32 answers per request twice, with sampling seed 0 (validation) and seed 1 (test), and count

    accuracy       answers that ``parse_caption(strict=True)`` accepts and that name exactly k objects;
    new_accuracy   of those, the answers that are not word for word one of the fine-tuning answers.

A model that memorises the 64 captions scores on accuracy, never on new_accuracy: writing a new well-formed
caption needs the language, which is what pre-training taught.

Longer pre-training. ``colour_lookup`` asks "what color is the <shape>?" after the caption of each one-object
validation scene, the look-up of a word in the context; ``pretrain_run`` pre-trains with ``gpt_shapes.train`` for
a given number of steps and measures it.

    python -m vitlib.recipes.gpt_finetune --save --workers 6     # writes data/results/gpt-finetune.json
"""

from __future__ import annotations

import argparse
import random

import torch

from . import gpt_shapes, results_json
from .. import zoo
from ..decoding import SampleProcessor
from ..lm import lm_loss
from ..train import train
from ..transformer import GPT
from ..utils import seed_everything

NAME = "gpt-finetune"
N_EXAMPLES, BATCH, LR = 64, 16, 1e-3
STEPS, EVAL_EVERY, SEEDS = 1000, 25, (0, 1, 2)
INITS = ("pre-trained", "from scratch")
PRETRAIN_STEPS = (gpt_shapes.STEPS, 4 * gpt_shapes.STEPS)
CHECK = {"init": "pre-trained", "seed": 0, "steps": 25, "eval_every": 25}   # what a unit test recomputes


def answers(model: GPT, k: int, n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` answers (token ids up to and with <eos>) to "draw k objects.", sampled at temperature 1, seeded."""
    tok = gpt_shapes.world().tokenizer
    prompt = torch.tensor([gpt_shapes.instruction_prompt(k)] * n, device=next(model.parameters()).device)  # (n, P)
    out = model.generate(prompt, model.config.max_len - prompt.shape[1], eos_token_id=tok.eos_id,
                         logits_processor=SampleProcessor(torch.Generator().manual_seed(seed * 10 + k)))
    rows = out[:, prompt.shape[1]:].tolist()                                                   # (n, new tokens)
    return [tuple(r[:r.index(tok.eos_id) + 1]) if tok.eos_id in r else tuple(r) for r in rows]


@torch.no_grad()
def score(model: GPT, shown: set, n_per_request: int = 32, seed: int = 0) -> dict[str, int]:
    """{"n", "right", "new_right"}: answers sampled for k = 1, 2, 3; right = a caption naming k objects; new_right =
    right and not one of the answers ``shown`` in fine-tuning (tuples of ids)."""
    w = gpt_shapes.world()
    counts = {"n": 0, "right": 0, "new_right": 0}
    for k in (1, 2, 3):
        for ids in answers(model.eval(), k, n_per_request, seed):
            try:
                right = len(w.parse_caption(w.tokenizer.decode(list(ids)))) == k
            except ValueError:
                right = False
            counts["n"] += 1
            counts["right"] += right
            counts["new_right"] += right and ids not in shown
    return counts


def fine_tune_batches(examples: list, steps: int, seed: int) -> list[dict]:
    """``steps`` batches of BATCH examples, epoch after epoch, reshuffled with a generator seeded by ``seed``."""
    generator, batches = torch.Generator().manual_seed(seed), []
    while len(batches) < steps:
        order = torch.randperm(len(examples), generator=generator).tolist()
        batches += [gpt_shapes.qa_batch([examples[i] for i in order[j:j + BATCH]])
                    for j in range(0, len(order), BATCH)]
    return batches[:steps]


def start_model(init: str, seed: int) -> GPT:
    """The pre-trained course GPT, or a fresh GPT of its size drawn with ``seed``."""
    if init == "pre-trained":
        return zoo.load("gpt-shapes", device="cpu")
    seed_everything(seed)
    return GPT(gpt_shapes.config())


def run_one(init: str, seed: int, steps: int = STEPS, eval_every: int = EVAL_EVERY,
            n_examples: int = N_EXAMPLES) -> dict:
    """Fine-tune one model on the CPU; the validation and test counts at step 0 and every ``eval_every`` steps."""
    examples = gpt_shapes.instruction_examples(n_examples, "train", seed=seed)
    shown = {tuple(a) for _, a in examples}
    model = start_model(init, seed)
    curve = {"steps": [0], "val": [score(model, shown, seed=0)], "test": [score(model, shown, seed=1)]}

    def evaluate(m):
        curve["val"].append(score(m, shown, seed=0))
        curve["test"].append(score(m, shown, seed=1))
        return {}

    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    train(model, fine_tune_batches(examples, steps, seed), lm_loss, optimizer, steps=steps, eval_fn=evaluate,
          eval_every=eval_every, progress=False)
    curve["steps"] += list(range(eval_every, steps + 1, eval_every))
    return {"init": init, "seed": seed, **curve}


def steps_to(run: dict, threshold: float, split: str = "val") -> int | None:
    """The first evaluated step whose accuracy on ``split`` reaches ``threshold``; None if none does."""
    for step, c in zip(run["steps"], run[split]):
        if c["right"] / c["n"] >= threshold:
            return step
    return None


@torch.no_grad()
def colour_lookup(model: GPT, n_scenes: int = 300) -> dict[str, int]:
    """{"asked", "right"}: "what color is the <shape>?" after the caption of each one-object scene among the first
    ``n_scenes`` validation scenes; right when the next-token argmax is the object's colour."""
    w, rng, counts = gpt_shapes.world(), random.Random(0), {"asked": 0, "right": 0}
    device = next(model.parameters()).device
    for scene in w.scenes(n_scenes, "val"):
        if len(scene.objects) == 1:
            obj = scene.objects[0]
            text = f"<bos> {w.caption(scene, rng)} <eos> what color is the {obj.shape}?"
            guess = model.eval()(torch.tensor([w.tokenizer.encode(text)], device=device))[0, -1].argmax().item()
            counts["asked"] += 1
            counts["right"] += w.tokenizer.vocab[guess] == obj.color
    return counts


def pretrain_run(steps: int, seed: int) -> dict:
    """Pre-train the course GPT for ``steps`` steps on the CPU; its validation perplexity and colour look-up."""
    model, history = gpt_shapes.train(steps=steps, seed=seed, device="cpu", progress=False, eval_every=steps)
    return {"steps": steps, "seed": seed, "val_perplexity": history.last("val_perplexity"), **colour_lookup(model)}


def _job(kind: str, **kwargs) -> dict:
    return {"kind": kind, **(pretrain_run(**kwargs) if kind == "pretrain" else run_one(**kwargs))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Pre-training versus fine-tuning over seeds (chapter 03).")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--pretrain-steps", type=int, nargs="*", default=list(PRETRAIN_STEPS))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--save", action="store_true", help=f"write data/results/{NAME}.json")
    args = p.parse_args(argv)
    jobs = [{"kind": "pretrain", "steps": s, "seed": seed} for s in sorted(args.pretrain_steps, reverse=True)
            for seed in args.seeds]
    jobs += [{"kind": "finetune", "init": i, "seed": s, "steps": args.steps} for i in INITS for s in args.seeds]
    done = results_json.run_all(_job, jobs, args.workers)
    runs = [r for r in done if r["kind"] == "finetune"]
    pretraining = [r for r in done if r["kind"] == "pretrain"]
    for r in runs:
        print(f"{r['init']:12s} seed {r['seed']}: 0.9 at step {steps_to(r, 0.9)}, 0.95 at {steps_to(r, 0.95)}")
    for r in pretraining:
        print(f"pre-trained {r['steps']} steps, seed {r['seed']}: colour look-up {r['right']}/{r['asked']}")
    if args.save:
        settings = {"steps": args.steps, "eval_every": EVAL_EVERY, "seeds": args.seeds, "n_examples": N_EXAMPLES,
                    "batch": BATCH, "lr": LR, "device": "cpu", "torch": torch.__version__}
        print("wrote", results_json.save(NAME, settings, {"finetune": runs, "pretrain": pretraining,
                                                             "check": run_one(**CHECK)}))
    return {"finetune": runs, "pretrain": pretraining}


if __name__ == "__main__":
    main()
