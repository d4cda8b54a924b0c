"""Recipe for chapter 06: pre-train a small VLPModel on ShapesWorld with L = L_ITC + L_ITM + L_MLM, and the tests
that tell ITM with hard negatives from ITM with random ones.

Captions name every attribute of every object ("there is a small red circle at the top left and a large blue square
in the center."), so two different scenes never share a caption and a caption with one attribute changed is false.

    minimal pairs:  each test image with its true caption and the same caption with one colour, shape or position
                    changed; ITM should score the true one higher
    re-ranking:     text -> image retrieval by ITC similarity, then the ITC top-k re-ordered by ITM

Training runs in two stages: a warm-up with random ITM negatives (BLIP starts from pre-trained encoders; ours
from nothing), then two copies of the warmed-up model continue on the same batches, one with hard negatives and one
with random ones. The warm-up ships as the checkpoint "vlp-shapes-warmup", so that chapter 06 trains only the two
copies.

``swap_negatives`` gives each training caption a swap negative (``vitlib.binding``) for the runs of
``vitlib.recipes.vlp_swaps``.

    python -m vitlib.recipes.vlp_shapes --save       # the warm-up, written to data/zoo/vlp-shapes-warmup.*
    python -m vitlib.recipes.vlp_shapes --compare    # the warm-up, then both copies, and their measurements
"""

from __future__ import annotations

import copy
import functools
import random
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from . import cli
from ..binding import swap
from ..checks import check_int
from ..contrastive import similarity
from ..data import Scene, ShapesWorld, to_tensor
from ..data import distinct_scenes as catalog_distinct_scenes
from ..metrics import recall_at_k, rerank
from ..data.language import listing, noun_phrase
from ..data.render import GRID
from ..train import train as run_training
from ..utils import Timer, get_device, seed_everything
from ..vlp import VLPConfig, VLPModel

NAME = "vlp-shapes-warmup"
STEPS, COPY_STEPS = 200, 300   # steps of the shared warm-up (the checkpoint), and of each copy after it
ATTRIBUTES = ("color", "shape", "position")
SWAPPED = ("color", "shape", "position")   # the swaps that training negatives exchange
TEMPLATES = ("{}.", "there is {}.", "the image shows {}.")


def world() -> ShapesWorld:
    """Scenes of one or two objects, every colour+shape pair allowed."""
    return ShapesWorld(image_size=32, max_objects=2, holdout=(), seed=0)


def describe(objects, template: int) -> str:
    """A caption naming size, colour, shape and position of each object, in the given order."""
    return TEMPLATES[template].format(listing([noun_phrase(o, "full") for o in objects]))


def orders_and_templates(scenes, seed: int = 0) -> list[tuple[list[int], int]]:
    """For each scene: a random order of its objects and one of the three templates (what ``captions`` uses)."""
    rng = random.Random(seed)
    out = []
    for s in scenes:
        order = list(range(len(s.objects)))
        rng.shuffle(order)
        out.append((order, rng.randrange(len(TEMPLATES))))
    return out


def captions(scenes, seed: int = 0) -> list[str]:
    """One full caption per scene, objects in a random order, one of three templates."""
    return [describe([s.objects[k] for k in order], template)
            for s, (order, template) in zip(scenes, orders_and_templates(scenes, seed))]


def swap_negatives(scenes, seed: int = 0) -> tuple[list[Scene], list[str], list[bool]]:
    """For each scene, a swap negative for training: the scene with colour, shape or position exchanged between its
    two objects (``vitlib.binding.swap``, the attribute drawn at random) and its caption, in the same object order
    and template as ``captions(scenes, seed)``. A scene that allows no swap keeps itself and its caption, marked
    False. -> (edited scenes, their captions, has a swap)."""
    w, rng = world(), random.Random(f"swaps-{seed}")
    edited, texts, has = [], [], []
    for s, (order, template) in zip(scenes, orders_and_templates(scenes, seed)):
        e = swap(s, rng.choice(SWAPPED), w, rng) if len(s.objects) == 2 else None
        edited.append(s if e is None else e)
        texts.append(describe([edited[-1].objects[k] for k in order], template))
        has.append(e is not None)
    return edited, texts, has


def edit(scene: Scene, attribute: str, rng: random.Random, w: ShapesWorld) -> tuple[Scene, int]:
    """The scene with one object's colour, shape or position changed (to a free cell, a (colour, shape) pair not
    already in the scene); returns (edited scene, index of the edited object)."""
    i = rng.randrange(len(scene.objects))
    o, others = scene.objects[i], [p for j, p in enumerate(scene.objects) if j != i]
    pairs = {(p.color, p.shape) for p in others}
    if attribute == "color":
        new = replace(o, color=rng.choice([c for c in w.colors if c != o.color and (c, o.shape) not in pairs]))
    elif attribute == "shape":
        new = replace(o, shape=rng.choice([s for s in w.shapes if s != o.shape and (o.color, s) not in pairs]))
    else:
        cells = [divmod(c, GRID) for c in range(GRID * GRID) if divmod(c, GRID) not in {p.position for p in scene.objects}]
        new = replace(o, position=rng.choice(cells))
    return Scene(scene.objects[:i] + (new,) + scene.objects[i + 1:]), i


def minimal_pairs(scenes, seed: int = 0) -> dict:
    """For each scene: its caption and the caption of an edited scene with the objects in the same order and the
    same template. Attributes cycle colour, shape, position. -> {"true", "false", "attribute"} lists."""
    w, rng = world(), random.Random(seed)
    out = {"true": [], "false": [], "attribute": []}
    for k, scene in enumerate(scenes):
        attribute = ATTRIBUTES[k % len(ATTRIBUTES)]
        edited, _ = edit(scene, attribute, rng, w)
        order = list(range(len(scene.objects)))
        rng.shuffle(order)
        template = rng.randrange(len(TEMPLATES))
        out["true"].append(describe([scene.objects[j] for j in order], template))
        out["false"].append(describe([edited.objects[j] for j in order], template))
        out["attribute"].append(attribute)
    return out


@functools.lru_cache(maxsize=8)
def _distinct(n: int, split: str) -> tuple[Scene, ...]:
    return tuple(catalog_distinct_scenes(world(), n, split))


def distinct_scenes(n: int, split: str) -> list[Scene]:
    """The first n distinct scenes of a split of this chapter's world (always the same ones)."""
    return list(_distinct(n, split))


def tokenize(texts, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    batch = world().tokenizer(list(texts), add_bos=True, add_eos=True)
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def config() -> VLPConfig:
    """The chapter's model, on every device: a 4-stage CNN (a 4x4 map of 64-d tokens), widths 64, one layer each
    for the text and fusion encoders."""
    tok = world().tokenizer
    return VLPConfig(vocab_size=tok.vocab_size, bos_id=tok.bos_id, eos_id=tok.eos_id, image_encoder="cnn",
                     cnn_channels=(16, 32, 64, 64), text_width=64, text_layers=1, fusion_layers=1, n_heads=4,
                     embed_dim=64, mask_prob=0.3)


def one_cycle(optimizer: torch.optim.Optimizer, steps: int, lr: float):
    """The learning-rate schedule of every run: up from lr / 25 to ``lr`` in the first 10% of ``steps``, then
    down (cosine) to lr / 25e4 (PyTorch's OneCycleLR)."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)


def train(negatives: str = "hard", steps: int = STEPS, model: VLPModel | None = None, n_train: int = 4000,
          captions_per_scene: int = 2, batch_size: int = 64, lr: float = 4e-3, seed: int = 0, device=None,
          progress: bool = True, swaps: str | None = None, stop_after: int | None = None):
    """Train ``model`` (a new VLPModel if None) in place; return (model, history): the total loss ("loss") and
    its parts ("itc", "itm", "mlm") at every step. The data and the random draws depend on ``seed`` only, so two
    variants see the same batches. ``swaps``: None, "itm" (each caption's swap negative, ``swap_negatives``, joins
    ITM beside the sampled negatives) or "itm+itc" (and ITC's softmaxes, as NegCLIP). ``stop_after``: end after
    that many of the ``steps`` (the schedule stays that of ``steps``), as a test that recomputes a run's start does."""
    if swaps not in (None, "itm", "itm+itc"):
        raise ValueError(f"swaps must be None, 'itm' or 'itm+itc', got {swaps!r}")
    if stop_after is not None:
        check_int(stop_after, "stop_after", maximum=steps)
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    scenes = distinct_scenes(n_train, "train")
    images = to_tensor(world().render_batch(scenes)).to(device)        # (N, 3, 32, 32)
    texts = [c for k in range(captions_per_scene) for c in captions(scenes, seed + k)]                # K N
    negative = [swap_negatives(scenes, seed + k) for k in range(captions_per_scene)] if swaps else []
    swap_texts = [t for _, texts_k, _ in negative for t in texts_k]                                   # K N or 0
    ids, mask = tokenize(texts + swap_texts)                           # one padding for both: (K N [+ K N], T)
    ids, mask, swap_ids, swap_mask = ids[:len(texts)], mask[:len(texts)], ids[len(texts):], mask[len(texts):]
    image_ids = torch.arange(len(scenes)).repeat(captions_per_scene)   # (K N,): caption k of scene i -> image i
    rows = torch.arange(len(texts))                                    # (K N,): the row of each caption
    loader = DataLoader(TensorDataset(image_ids, ids, mask, rows), batch_size=batch_size, shuffle=True,
                        drop_last=True, generator=generator)
    if swaps:
        swap_images = torch.from_numpy(np.concatenate([world().render_batch(e) for e, _, _ in negative]))
        swap_images = swap_images.permute(0, 3, 1, 2).to(device)       # uint8 (K N, H, W, 3) -> (K N, 3, H, W)
        has_swap = torch.tensor([h for _, _, has in negative for h in has])                           # (K N,)
    model = (VLPModel(config()) if model is None else model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = one_cycle(optimizer, steps, lr)
    sampler = torch.Generator(device=device).manual_seed(seed)      # negatives and masks

    def loss_fn(m, batch):
        image_ids, ids, mask, rows = batch
        inputs = {"images": images[image_ids], "input_ids": ids, "attention_mask": mask, "image_ids": image_ids}
        if swaps:
            inputs |= {"swap_images": swap_images[rows].float() / 255, "swap_input_ids": swap_ids[rows],
                       "swap_attention_mask": swap_mask[rows], "has_swap": has_swap[rows]}
        parts = m.losses(inputs, negatives, sampler, swap_itc=swaps == "itm+itc")
        return {"loss": parts.pop("total"), **parts}

    history = run_training(model, loader, loss_fn, optimizer, steps=steps if stop_after is None else stop_after,
                           scheduler=schedule, after_step=VLPModel.clamp_logit_scale_, progress=progress)
    return model.eval(), history


@torch.no_grad()
def itm_probability(model: VLPModel, images, ids, mask, batch_size: int = 512) -> torch.Tensor:
    """p(match) of aligned (image, text) rows, (N,)."""
    out = []
    for i in range(0, len(ids), batch_size):
        sl = slice(i, i + batch_size)
        _, image_tokens = model.encode_image(images[sl])
        _, text_tokens = model.encode_text(ids[sl], mask[sl])
        out.append(model.itm_logits(image_tokens, text_tokens, mask[sl]).softmax(dim=-1)[:, 1])
    return torch.cat(out)


@torch.no_grad()
def minimal_pair_outcomes(model: VLPModel, scenes, pairs: dict) -> dict:
    """Per changed attribute and overall ("all"): for each pair, whether ITM (and, for comparison, ITC) scores the
    true caption above the edited one. -> {"itm" | "itc": {attribute: bool tensor}}."""
    device = next(model.parameters()).device
    images = to_tensor(world().render_batch(scenes)).to(device)
    (ids_t, mask_t), (ids_f, mask_f) = tokenize(pairs["true"], device), tokenize(pairs["false"], device)
    right = {"itm": itm_probability(model, images, ids_t, mask_t) > itm_probability(model, images, ids_f, mask_f)}
    v = model.encode_image(images)[0]
    cos = lambda ids, mask: torch.cosine_similarity(v, model.encode_text(ids, mask)[0], dim=-1)  # noqa: E731
    right["itc"] = cos(ids_t, mask_t) > cos(ids_f, mask_f)
    attribute = pairs["attribute"]
    return {kind: {**{a: r.cpu()[[x == a for x in attribute]] for a in ATTRIBUTES}, "all": r.cpu()}
            for kind, r in right.items()}


def minimal_pair_accuracy(model: VLPModel, scenes, pairs: dict) -> dict:
    """Per changed attribute and overall: how often ITM (and ITC) scores the true caption above the edited one."""
    return {kind: {a: r.float().mean().item() for a, r in by.items()}
            for kind, by in minimal_pair_outcomes(model, scenes, pairs).items()}


@torch.no_grad()
def itc_itm_retrieval(model: VLPModel, scenes, k: int = 8) -> dict:
    """Text -> image R@1 over the given scenes: by ITC, and after re-ranking ITC's top-k by
    log p_ITM(match) + s / tau (the sum of both models' log-scores); also each query's first image both ways."""
    device = next(model.parameters()).device
    images = to_tensor(world().render_batch(scenes)).to(device)
    ids, mask = tokenize(captions(scenes, seed=1), device)
    image_emb, image_tokens = model.encode_image(images)
    text_emb, text_tokens = model.encode_text(ids, mask)
    logits = similarity(text_emb, image_emb) * model.scale()          # (texts, images); target: the diagonal

    def score(query, candidate):
        log_p = torch.cat([model.itm_logits(image_tokens[candidate[i:i + 512]], text_tokens[query[i:i + 512]],
                                            mask[query[i:i + 512]]).log_softmax(dim=-1)[:, 1]
                           for i in range(0, len(query), 512)])
        return log_p + logits[query, candidate]

    reranked = rerank(logits, k, score)
    return {"itc_r1": recall_at_k(logits, 1), f"itc_r{k}": recall_at_k(logits, k),
            "rerank_r1": recall_at_k(reranked, 1), "itc_top1": logits.argmax(dim=1).tolist(),
            "rerank_top1": reranked.argmax(dim=1).tolist()}


def evaluate(model: VLPModel) -> dict:
    """What the checkpoint states and its test recomputes: ITC retrieval and minimal-pair accuracies on test scenes."""
    test = distinct_scenes(600, "test")
    found = itc_itm_retrieval(model, distinct_scenes(1000, "test"))
    return {"itc_r1": found["itc_r1"], "rerank_r1": found["rerank_r1"],
            "minimal_pairs": minimal_pair_accuracy(model, test, minimal_pairs(test))}


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    parser.add_argument("--compare", action="store_true", help="train both copies after the warm-up and measure")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # for a model this small a second CPU thread costs more than it saves
    with Timer() as timer:
        warm, history = train("random", args.steps, seed=args.seed, device="cpu", progress=False)
    metrics = {"steps": args.steps, "train_seconds": round(timer.seconds, 1), **evaluate(warm),
               "losses": {k: [round(x, 4) for x in v] for k, v in history.values.items()}}   # per step, for plots
    print("warm-up:", {k: v for k, v in metrics.items() if k != "losses"})
    cli.report(warm, metrics, NAME, args.save, args.overwrite)
    if args.compare:
        test = distinct_scenes(600, "test")
        pairs = minimal_pairs(test)
        for negatives in ("hard", "random"):
            with Timer() as timer:
                model, _ = train(negatives, COPY_STEPS, copy.deepcopy(warm), seed=args.seed + 1, device="cpu",
                                 progress=False)
            found = {k: v for k, v in itc_itm_retrieval(model, distinct_scenes(1000, "test")).items()
                     if "top1" not in k}
            print(negatives, f"{timer.seconds:.0f}s", minimal_pair_accuracy(model, test, pairs), found)


if __name__ == "__main__":
    main()
