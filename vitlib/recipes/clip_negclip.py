"""Recipe for NegCLIP on ShapesWorld: the course CLIP trained with swapped captions as hard negatives (chapter 05).

The course CLIP scores swaps at chance (``vitlib.binding``): "a red circle and a blue square" and "a blue circle
and a red square" hold the same words, and nothing in its batches ever asks it to tell them apart. NegCLIP
(Yuksekgonul et al., 2023) adds such captions to the batch as wrong answers. Here every batch is the course CLIP's
(``clip_shapes.batches``: half one-object scenes, half scenes of 1-3 objects) plus ``n_swaps`` train scenes of two
or three objects, each with a true caption and the caption of an edit that swaps colour, shape or position between
two of its objects (``binding.swap``, ``binding.paired_captions``: one template, one object order). The swapped
captions join every image's softmax, the swapped images every text's (``clip_loss_with_negatives``):

    L = 1/2 [ CE([s, s(v, t~)] / tau) + CE([s^T, s(t, v~)] / tau) ]

Only edits that are themselves train scenes are used, so no test scene or test swap is ever shown, not even as
a negative. Model, optimiser and schedule are ``clip_shapes``'; the run is four times as long (1200 steps), and
``compare`` trains the course CLIP for as long.

    python -m vitlib.recipes.clip_negclip --save     # trains on the CPU and writes data/zoo/clip-shapes-negclip.*
    python -m vitlib.recipes.clip_negclip --compare --save   # CLIP against NegCLIP, seeds 0-2: RESULTS, and
                                                             # seed 0 as the checkpoint
"""

from __future__ import annotations

import functools
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from . import cli, clip_shapes, results_json
from .. import binding
from ..clip import CLIP, score_pairs
from ..contrastive import clip_loss_with_negatives
from ..data import ShapesWorld
from ..train import param_groups
from ..train import train as run_training
from ..utils import get_device, seed_everything

NAME = "clip-shapes-negclip"
STEPS = 1200
RESULTS = results_json.path("clip-negclip")
SEEDS, CHECK_STEPS = (0, 1, 2), 20
TRAIN_SWAPS = ("color", "shape", "position")
N_SWAP_EVAL = 500


def world() -> ShapesWorld:
    """The course CLIP's world (24x24 images)."""
    return clip_shapes.world()


def config():
    """The course CLIP's configuration: only the training data differ."""
    return clip_shapes.config()


def swap_data(scenes, seed: int, w: ShapesWorld | None = None, kinds=TRAIN_SWAPS) -> dict:
    """For each scene of two or more objects and each swap kind that applies (an edit that is a train scene):
    {"images", "input_ids", "attention_mask"} of the scene and its true caption, and {"neg_images",
    "neg_input_ids", "neg_attention_mask"} of the edit and its caption; uint8 images (M, 3, H, W), ids (M, 40)."""
    w = world() if w is None else w
    rng = random.Random(seed)
    pairs = []
    for scene in scenes:
        for kind in kinds:
            edited = binding.swap(scene, kind, w, rng) if len(scene) >= 2 else None
            if edited is not None and w.split_of(edited) == "train":
                pairs.append((scene, edited, *binding.paired_captions(scene, edited, rng)))
    if not pairs:
        raise ValueError("no scene allowed a swap: swap_data needs train scenes of two or more objects")
    out = {}
    for prefix, scene_at, caption_at in (("", 0, 2), ("neg_", 1, 3)):
        ids, mask = w.tokenizer.pad([w.tokenizer.encode(p[caption_at], add_bos=True, add_eos=True) for p in pairs],
                                    max_len=config().max_len)
        images = torch.from_numpy(w.render_batch([p[scene_at] for p in pairs]))   # (M, H, W, 3)
        out |= {f"{prefix}images": images.permute(0, 3, 1, 2).contiguous(),        # (M, 3, H, W)
                f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask}
    return out


def batches(single: dict, multi: dict, swaps: dict, steps: int, batch_size: int, n_swaps: int, generator,
            pad_id: int = 0):
    """``clip_shapes.batches`` plus ``n_swaps`` (scene, caption) pairs from the swap pool, and their swapped
    images and captions: (images, input_ids, attention_mask, neg_images, neg_input_ids, neg_attention_mask)."""
    for images, ids, mask in clip_shapes.batches(single, multi, steps, batch_size, 0.5, generator):
        i = torch.randint(len(swaps["images"]), (n_swaps,), generator=generator)
        T = max(ids.shape[1], int(swaps["attention_mask"][i].sum(1).max()),
                int(swaps["neg_attention_mask"][i].sum(1).max()))
        pad = functools.partial(F.pad, pad=(0, T - ids.shape[1]))
        yield (torch.cat([images, swaps["images"][i].float() / 255]),                  # (B + n_swaps, 3, H, W)
               torch.cat([pad(ids, value=pad_id), swaps["input_ids"][i, :T]]),         # (B + n_swaps, T)
               torch.cat([pad(mask, value=0), swaps["attention_mask"][i, :T]]),
               swaps["neg_images"][i].float() / 255,                                   # (n_swaps, 3, H, W)
               swaps["neg_input_ids"][i, :T], swaps["neg_attention_mask"][i, :T])      # (n_swaps, T)


def train(steps: int = STEPS, n_swaps: int = 64, swap_images: bool = True, batch_size: int = 128, lr: float = 1e-3,
          seed: int = 0, device: torch.device | str | None = None, eval_every: int | None = 50,
          progress: bool = True, data: tuple[dict, dict] | None = None):
    """Train the course CLIP with ``n_swaps`` swap pairs per batch; the swapped captions (and, with
    ``swap_images``, the swapped images) are extra negatives. Return (model, history); the history holds the
    validation zero-shot accuracy and colour-swap text accuracy every ``eval_every`` steps."""
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    w = world()
    single, multi = clip_shapes.training_data(seed) if data is None else data
    swaps = swap_data(multi["scenes"], seed, w)
    val_swaps = binding.swap_set(w, 200, "val", seed=seed)
    model = CLIP(config()).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)

    def step_loss(m: CLIP, batch) -> torch.Tensor:
        images, ids, mask, neg_images, neg_ids, neg_mask = batch
        v_neg = m.encode_image(neg_images) if swap_images else None
        return clip_loss_with_negatives(m.encode_image(images), m.encode_text(ids, mask), m.logit_scale,
                                        m.encode_text(neg_ids, neg_mask), v_neg)

    def validate(m: CLIP) -> dict:
        swap = binding.swap_accuracy(functools.partial(score_pairs, m, w.tokenizer), val_swaps)
        return {"val_zero_shot": clip_shapes.zero_shot_accuracy(m, "val", w), "val_color_swap": swap["color"]["text"],
                "val_shape_swap": swap["shape"]["text"]}

    stream = batches(single, multi, swaps, steps, batch_size, n_swaps, generator, w.tokenizer.pad_id)
    history = run_training(model, stream, step_loss, optimizer, steps=steps, scheduler=schedule,
                           after_step=CLIP.clamp_logit_scale_, eval_every=eval_every, progress=progress,
                           eval_fn=validate)
    return model.eval(), history


def swap_metrics(model: CLIP, split: str = "test", n: int = N_SWAP_EVAL, w: ShapesWorld | None = None) -> dict:
    """Text and image accuracy on ``n`` swaps of each kind (``binding.swap_set(seed=0)``), flat:
    {"color_text": ..., "color_image": ..., ...}."""
    w = world() if w is None else w
    result = binding.swap_accuracy(functools.partial(score_pairs, model, w.tokenizer),
                                   binding.swap_set(w, n, split, seed=0))
    return {f"{kind}_{which}": r[which] for kind, r in result.items() for which in ("text", "image")}


def evaluate(model: CLIP, w: ShapesWorld | None = None) -> dict[str, float]:
    """The course CLIP's metrics (``clip_shapes.evaluate``) and the swap accuracies on test scenes."""
    return {**clip_shapes.evaluate(model, w), **swap_metrics(model, "test", w=w)}


def compare(seeds=SEEDS, steps: int = STEPS, save: bool = False, overwrite: bool = False, out: Path | None = None,
            **options) -> dict:
    """The course CLIP (``clip_shapes.train``) and NegCLIP (``train(**options)``), same seeds, same steps, on the
    CPU: their ``evaluate`` metrics per seed, and a check (NegCLIP, seed 0, ``CHECK_STEPS`` steps) that a test
    recomputes. With ``save``, NegCLIP's seed-0 model is written to the zoo as the checkpoint. With ``out``, the
    results so far are written there after each run, and runs already there are not repeated."""
    torch.set_num_threads(1)
    header = {"command": "python -m vitlib.recipes.clip_negclip --compare --save", "steps": steps,
              "seeds": list(seeds), "options": options}
    results = json.loads(Path(out).read_text()) if out is not None and Path(out).exists() else {}
    if any(results.get(k) != v for k, v in header.items()):
        check, _ = train(steps=CHECK_STEPS, seed=0, device="cpu", eval_every=None, progress=False, **options)
        results = {**header, "check": {"row": "NegCLIP", "seed": 0, "steps": CHECK_STEPS,
                                       "metrics": evaluate(check)}, "rows": {"CLIP": [], "NegCLIP": []}}
    for i, seed in enumerate(seeds):
        for name, recipe_train in (("CLIP", clip_shapes.train), ("NegCLIP", functools.partial(train, **options))):
            if len(results["rows"][name]) > i:
                continue
            recipe = SimpleNamespace(train=recipe_train, evaluate=evaluate)   # both judged by this evaluate
            model, _, metrics = cli.train_and_evaluate(recipe, steps=steps, seed=seed, device="cpu",
                                                       eval_every=None, progress=False)
            results["rows"][name].append(metrics)
            if name == "NegCLIP" and i == 0:
                cli.report(model, metrics, NAME, save, overwrite)
            if out is not None:
                Path(out).write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv=None) -> None:
    p = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    p.add_argument("--compare", action="store_true",
                   help=f"train both over seeds {SEEDS} and write {RESULTS.name}; with --save, ship seed 0")
    args = p.parse_args(argv)
    if not args.compare:
        cli.run(sys.modules[__name__], args)
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    compare(steps=args.steps, save=args.save, overwrite=args.overwrite, out=RESULTS)
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
