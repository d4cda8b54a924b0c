"""Recipe for chapter 07's VQA model: one fusion operator between the frozen course CLIP ("clip-shapes": its
vision tower's 9 patch tokens, its text tower's question states) and an answer head (vitlib.vqa).

    L = CE(head(fuse(V, X)), answer)      AdamW, one-cycle schedule, batches of BATCH_SIZE questions

Each batch draws every question type equally often (a scene has 4 questions per object but relations only
between pairs of objects, so relations would otherwise be rare).

Data: every question ``world.questions`` asks of N_TRAIN train scenes (1-3 objects, 24x24, the held-out colour+
shape pairs never shown), N_VAL validation and N_TEST test scenes; the frozen encoders run once, before training.
The checkpoint's operator (``OPERATOR``) is the one ``vitlib.recipes.fusion_vqa`` ranks first on validation.

    python -m vitlib.recipes.vqa_shapes --save        # trains on one CPU core, writes data/zoo/vqa-shapes.*
"""

from __future__ import annotations

import functools
import sys

import torch
import torch.nn.functional as F

from . import cli
from .clip_shapes import world
from .. import zoo
from ..data import to_tensor
from ..train import param_groups, train as run_training
from ..utils import count_parameters, seed_everything
from ..vqa import (QUESTION_TYPES, VQAConfig, VQAModel, accuracy_by_type, answer_vocabulary, encode_questions,
                   image_tokens, qa_pairs)

NAME = "vqa-shapes"
CLIP_NAME = "clip-shapes"
OPERATOR = "cross_attention"
STEPS = 3000
BATCH_SIZE = 256
LR = 2e-3
N_TRAIN, N_VAL, N_TEST = 3000, 500, 1000
SEEDS = {"train": 0, "val": 1, "test": 2}   # the question sampler's seed per split


def config(operator: str = OPERATOR) -> VQAConfig:
    return VQAConfig(operator=operator, answers=answer_vocabulary(world()))


@functools.lru_cache(maxsize=4)
def split_data(split: str, n: int | None = None) -> dict:
    """{"image" (scenes, 9, 64), "text" (questions, 16, 64), "mask", "scene", "question", "answer" (QAs,),
    "types", "questions", "scenes"}: the frozen encoders' outputs, each distinct question encoded once."""
    n = {"train": N_TRAIN, "val": N_VAL, "test": N_TEST}.get(split, N_TEST) if n is None else n
    w = world()
    clip = zoo.load(CLIP_NAME, device="cpu").requires_grad_(False).eval()
    scenes = w.scenes(n, split)
    qa = qa_pairs(w, scenes, SEEDS.get(split, 3))
    questions = sorted({q for _, q, _, _ in qa})
    index = {q: i for i, q in enumerate(questions)}
    answers = {a: i for i, a in enumerate(answer_vocabulary(w))}
    text, mask = encode_questions(clip, w.tokenizer, questions)
    return {"image": image_tokens(clip, to_tensor(w.render_batch(scenes))), "text": text, "mask": mask,
            "scene": torch.tensor([i for i, _, _, _ in qa]), "question": torch.tensor([index[q] for _, q, _, _ in qa]),
            "answer": torch.tensor([answers[a] for _, _, a, _ in qa]), "types": [t for _, _, _, t in qa],
            "questions": questions, "scenes": scenes}


def inputs(data: dict, rows: torch.Tensor, device="cpu"):
    """(image tokens, question states, question mask) of the QA pairs ``rows``."""
    q = data["question"][rows]
    return (data["image"][data["scene"][rows]].to(device), data["text"][q].to(device), data["mask"][q].to(device))


def train(steps: int = STEPS, seed: int = 0, device="cpu", progress: bool = True, operator: str = OPERATOR,
          eval_every: int | None = None):
    """Train the operator and the head; return (model, history). ``eval_every``: log validation accuracy."""
    data, val = split_data("train"), split_data("val")   # first: building them draws random numbers (the CLIP)
    generator = seed_everything(seed)
    model = VQAModel(config(operator)).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=LR)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, LR, total_steps=steps, pct_start=0.1)

    by_type = [torch.tensor([i for i, t in enumerate(data["types"]) if t == kind]) for kind in QUESTION_TYPES]

    def batches():
        while True:   # each question type equally often: relations are few, and the hardest
            kind = torch.randint(len(by_type), (BATCH_SIZE,), generator=generator)                # (B,)
            pick = (torch.rand(BATCH_SIZE, generator=generator) * torch.tensor([len(r) for r in by_type])[kind])
            rows = torch.stack([by_type[k][j] for k, j in zip(kind.tolist(), pick.long().tolist())])
            yield (*inputs(data, rows), data["answer"][rows])

    def loss_fn(m, batch):
        image, text, mask, answer = batch
        return F.cross_entropy(m(image, text, mask), answer)

    def eval_fn(m):
        return {"val_accuracy": evaluate_split(m, val)["all"]["accuracy"]}

    history = run_training(model, batches(), loss_fn, optimizer, steps=steps, scheduler=scheduler,
                           eval_fn=eval_fn if eval_every else None, eval_every=eval_every, progress=progress,
                           device=device)
    return model.eval(), history


@torch.no_grad()
def predict(model, data: dict, batch_size: int = 4096) -> torch.Tensor:
    """The model's answer index for every QA pair of ``data``."""
    device = next(model.parameters()).device
    model.eval()
    rows = torch.arange(len(data["answer"]))
    return torch.cat([model(*inputs(data, r, device)).argmax(dim=-1).cpu() for r in rows.split(batch_size)])


def evaluate_split(model, data: dict) -> dict:
    return accuracy_by_type(predict(model, data) == data["answer"], data["types"])


def evaluate(model) -> dict:
    """Accuracy by question type on validation and test, with Wilson intervals; the parameter count."""
    return {"operator": model.config.operator, "val": evaluate_split(model, split_data("val")),
            "test": evaluate_split(model, split_data("test")), "parameters": count_parameters(model)}


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    cli.run(sys.modules[__name__], parser.parse_args(argv))


if __name__ == "__main__":
    main()
