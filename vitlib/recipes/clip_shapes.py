"""Recipe for the course CLIP: contrastive training on ShapesWorld images and their captions (chapter 05).

Data. Images are 24x24, so that the 3x3 grid of ShapesWorld cells falls exactly on the ViT's 3x3 patches of 8x8
pixels. Two pools of (image, caption) pairs from the train split (held-out colour+shape pairs never appear, in
pixels or words): scenes of one object, and scenes of one to three objects. Half of every batch comes from each.
In a batch of multi-object scenes the set of colours already tells most pairs apart; in a batch of one-object
scenes colour leaves about ten candidates per image, so both towers must also learn shape (chapter 05 measures the
difference).

Evaluation. Zero-shot colour+shape classification of one-object scenes among the texts "a red circle." ... for all
30 pairs (held-out ones included): on every test scene, and on every scene of a held-out pair. Retrieval (R@1, R@5)
on test scenes of one to three objects: text -> image, image -> text, and image -> image, where an image is
relevant to another if both hold the same set of colour+shape pairs.

    python -m vitlib.recipes.clip_shapes --save      # trains on the CPU and writes data/zoo/clip-shapes.*
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import replace

import torch

from . import cli
from ..clip import CLIP, CLIPConfig, zero_shot_classify
from ..contrastive import clip_loss, hinge_loss, siglip_loss, similarity
from ..data import Scene, ShapesWorld, distinct_scenes, one_object_scenes, to_tensor
from ..data.language import article
from ..metrics import recall_at_k
from ..train import param_groups
from ..train import train as run_training
from ..train.distributed import all_gather
from ..utils import count_parameters, get_device, seed_everything

NAME = "clip-shapes"
IMAGE_SIZE = 24
LOSSES = ("infonce", "hinge", "siglip")
N_RETRIEVAL = 500
STEPS = 300


def world(max_objects: int = 3) -> ShapesWorld:
    """The chapter's world: 24x24 images, the default held-out pairs."""
    return ShapesWorld(image_size=IMAGE_SIZE, max_objects=max_objects, seed=0)


def class_pairs(w: ShapesWorld | None = None) -> list[tuple[str, str]]:
    """Every (colour, shape) pair of the world, held-out pairs included: the zero-shot classes."""
    w = world() if w is None else w
    return [(c, s) for c in w.colors for s in w.shapes]


def class_texts(pairs: list[tuple[str, str]]) -> list[str]:
    """ "a red circle.", "an orange cross." ... for each (colour, shape): a caption in the world's grammar."""
    return [f"{article(c)} {c} {s}." for c, s in pairs]


def zero_shot_data(scenes: list[Scene], w: ShapesWorld | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One-object scenes -> (images float (N, 3, 24, 24), labels LongTensor (N,) indexing ``class_pairs()``)."""
    w = world() if w is None else w
    pairs = class_pairs(w)
    labels = torch.tensor([pairs.index((s.objects[0].color, s.objects[0].shape)) for s in scenes])
    return to_tensor(w.render_batch(scenes)), labels


def caption_data(scenes: list[Scene], seed: int, w: ShapesWorld | None = None, max_len: int = CLIPConfig.max_len):
    """Scenes -> {"images": uint8 (N, 3, H, W), "input_ids", "attention_mask": (N, max_len), "captions", "scenes"}."""
    w = world() if w is None else w
    rng = random.Random(seed)
    captions = [w.caption(s, rng) for s in scenes]
    encoded = [w.tokenizer.encode(c, add_bos=True, add_eos=True) for c in captions]
    longest = max(map(len, encoded))
    if longest > max_len:
        raise ValueError(f"a caption has {longest} tokens, more than max_len={max_len}")
    ids, mask = w.tokenizer.pad(encoded, max_len=max_len)
    images = torch.from_numpy(w.render_batch(scenes)).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
    return {"images": images, "input_ids": ids, "attention_mask": mask, "captions": captions, "scenes": list(scenes)}


def batches(single: dict, multi: dict, steps: int, batch_size: int, single_share: float, generator):
    """``steps`` batches (images float, input_ids, attention_mask), a ``single_share`` of each from the one-object
    pool and the rest from the pool of 1-3 objects; texts are cut to the longest in the batch."""
    n_single = round(batch_size * single_share)
    for _ in range(steps):
        parts = [(pool, torch.randint(len(pool["images"]), (n,), generator=generator))
                 for pool, n in ((single, n_single), (multi, batch_size - n_single)) if n]
        images = torch.cat([pool["images"][i] for pool, i in parts]).float() / 255  # (B, 3, H, W) in [0, 1]
        ids = torch.cat([pool["input_ids"][i] for pool, i in parts])
        mask = torch.cat([pool["attention_mask"][i] for pool, i in parts])
        T = int(mask.sum(dim=1).max())
        yield images, ids[:, :T], mask[:, :T]


def training_data(seed: int = 0, n_single: int = 4000, n_multi: int = 16000) -> tuple[dict, dict]:
    """The two training pools (see ``caption_data``): one-object train scenes, and train scenes of 1-3 objects."""
    return (caption_data(world(max_objects=1).scenes(n_single, "train"), seed, world(max_objects=1)),
            caption_data(world().scenes(n_multi, "train"), seed + 1))


def config() -> CLIPConfig:
    """The course CLIP: the CLIPConfig defaults, on every device (chapter 05's ablations are measured on it)."""
    return CLIPConfig()


@torch.no_grad()
def zero_shot_accuracy(model: CLIP, split: str, w: ShapesWorld | None = None) -> float:
    """Zero-shot colour+shape accuracy on every one-object scene of ``split``, among all 30 class texts."""
    w = world() if w is None else w
    images, labels = zero_shot_data(one_object_scenes(w, split), w)
    device = next(model.parameters()).device
    predicted = zero_shot_classify(model, w.tokenizer, images.to(device), class_texts(class_pairs(w)))
    return (predicted.cpu() == labels).float().mean().item()


def retrieval_data(n: int = N_RETRIEVAL, w: ShapesWorld | None = None) -> tuple[list[Scene], dict]:
    """The retrieval gallery: the first ``n`` distinct test scenes (1-3 objects) and their captions. Distinct, so
    that no query has an exact pixel twin that any pixel matcher would find."""
    w = world() if w is None else w
    scenes = distinct_scenes(w, n, "test")
    return scenes, caption_data(scenes, seed=2, w=w)


@torch.no_grad()
def retrieval_recalls(model: CLIP, n: int = N_RETRIEVAL, w: ShapesWorld | None = None) -> dict[str, float]:
    """R@1 and R@5 of text -> image and image -> text (the paired item), and of image -> image: another image with
    the same set of colour+shape pairs, asked only of the images that have one in the gallery."""
    scenes, data = retrieval_data(n, w)
    device = next(model.parameters()).device
    v = model.encode_image(data["images"].to(device).float() / 255)
    t = model.encode_text(data["input_ids"].to(device), data["attention_mask"].to(device))
    s_it = similarity(v, t).cpu()                              # (N images, N texts)
    s_ii = similarity(v, v).cpu().fill_diagonal_(-math.inf)    # an image never retrieves itself
    same = torch.tensor([[a.pairs() == b.pairs() for b in scenes] for a in scenes]).fill_diagonal_(False)
    asked = same.any(dim=1)                                    # queries with at least one relevant image
    out = {}
    for k in (1, 5):
        out[f"text_to_image_R@{k}"] = recall_at_k(s_it.T, k)
        out[f"image_to_text_R@{k}"] = recall_at_k(s_it, k)
        out[f"image_to_image_R@{k}"] = recall_at_k(s_ii[asked], k, targets=same[asked])
    return out


def evaluate(model: CLIP, w: ShapesWorld | None = None) -> dict[str, float]:
    """Zero-shot accuracy on test and held-out scenes, the retrieval recalls, the learnt tau (and SigLIP's bias)
    and the parameter count."""
    metrics = {"zero_shot_test": zero_shot_accuracy(model, "test", w),
               "zero_shot_heldout": zero_shot_accuracy(model, "heldout", w), **retrieval_recalls(model, w=w),
               "tau": round(1 / model.scale().item(), 4), "parameters": count_parameters(model)}
    if model.config.logit_bias is not None:
        metrics["logit_bias"] = round(model.logit_bias.item(), 4)
    return metrics


def train(loss: str = "infonce", temperature: float | None = None, margin: float = 0.2, steps: int = STEPS,
          single_share: float = 0.5, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
          device: torch.device | str | None = None, eval_every: int | None = 50, progress: bool = True,
          data: tuple[dict, dict] | None = None, siglip_scale: float = 10.0, siglip_bias: float = -10.0):
    """Train a CLIP; return (model, history).

    loss: "infonce" (CLIP), "hinge" (margin ``margin``) or "siglip" (a learnt scale and bias, from
    ``siglip_scale`` and ``siglip_bias``: 10 and -10 in SigLIP). temperature: None learns tau (from 0.07); a number
    fixes it. AdamW decays weight matrices and embedding tables only (``vitlib.train.param_groups``): never a bias,
    a norm, the logit scale or SigLIP's bias.
    single_share: the share of each batch drawn from the one-object pool. data: the pools of
    ``training_data(seed)`` (built when None). The history holds the loss of every step and the zero-shot accuracy
    on the validation scenes every ``eval_every`` steps (and after the last).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature must be positive or None (learnt), got {temperature!r}")
    if not 0 <= single_share <= 1:
        raise ValueError(f"single_share must be a share of the batch in [0, 1], got {single_share!r}")
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    w = world()
    single, multi = training_data(seed) if data is None else data
    model = CLIP(replace(config(), logit_bias=siglip_bias if loss == "siglip" else None)).to(device)
    with torch.no_grad():
        if loss == "siglip":
            model.logit_scale.fill_(math.log(siglip_scale))
        if temperature is not None:
            model.logit_scale.fill_(math.log(1 / temperature)).requires_grad_(False)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)

    def step_loss(m: CLIP, batch) -> torch.Tensor:
        images, ids, mask = batch
        # Under torchrun each rank holds B/W pairs; the contrastive loss needs all B (every rank's embeddings).
        v, t = all_gather(m.encode_image(images)), all_gather(m.encode_text(ids, mask))
        if loss == "infonce":
            return clip_loss(v, t, m.logit_scale)
        if loss == "hinge":
            return hinge_loss(v, t, margin)
        return siglip_loss(v, t, m.logit_scale, m.logit_bias)

    stream = batches(single, multi, steps, batch_size, single_share, generator)
    history = run_training(model, stream, step_loss, optimizer, steps=steps, scheduler=schedule,
                           after_step=CLIP.clamp_logit_scale_, eval_every=eval_every, progress=progress,
                           eval_fn=lambda m: {"val_zero_shot": zero_shot_accuracy(m, "val", w)})
    return model.eval(), history


def main(argv=None) -> None:
    cli.run(sys.modules[__name__], cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS).parse_args(argv))


if __name__ == "__main__":
    main()
