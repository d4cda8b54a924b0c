"""Recipe for the course attribute classifier: colour, shape, size and position of a one-object scene (chapter 04).

A one-object ShapesWorld (no held-out pairs) has 6 colours x 5 shapes x 2 sizes x 9 cells = 540 distinct scenes;
the world's content hash puts 431 in train, 52 in val and 57 in test. Each val and test scene is a combination that
training never showed; validation chooses the recipe, the test split only reports it. The classifier is trained on
the train scenes, augmented (``augment``: slightly changed contrast and pixel noise, so that it also judges the
imperfect images generators make), and scored on the clean test scenes. ``augment`` can also recolour (permute the
RGB channels), which teaches shape without colour but draws near copies of 50 of the 52 val and 54 of the 57 test
scenes (``recoloured_twins``); the recipe leaves it off, and ``--compare`` measures, on validation over three seeds,
what that costs:

    python -m vitlib.recipes.classifier_shapes --save     # trains the CNN and writes data/zoo/shapes-classifier.*
    python -m vitlib.recipes.classifier_shapes --compare  # with and without recolouring: data/results/*.json
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import cli, results_json
from ..data import Scene, ShapesWorld, one_object_scenes, to_tensor
from ..data.render import BACKGROUND, COLORS
from ..train import param_groups, train as run_training
from ..utils import count_parameters, get_device, seed_everything
from ..classifier import ATTRIBUTES, AttributeClassifier, AttributeClassifierConfig, scene_labels

NAME = "shapes-classifier"
KINDS = ("cnn", "vit")
SETTINGS = {"cnn": {"steps": 400, "lr": 1e-2}, "vit": {"steps": 800, "lr": 3e-3}}
AUGMENTATION = {"recolour": 0.0, "jitter": 0.3, "shift": 0, "noise": 0.1}
NOISE_EVAL = 0.1   # the pixel noise of the robustness metric
STEPS = None       # each kind's own, in SETTINGS


def world() -> ShapesWorld:
    """The one-object world the classifier learns: every colour+shape pair allowed."""
    return ShapesWorld(image_size=32, max_objects=1, holdout=(), seed=0)


def tensors(scenes: list[Scene], w: ShapesWorld | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scenes -> (images float (N, 3, 32, 32) in [0, 1], {attribute: labels (N,)})."""
    w = world() if w is None else w
    return to_tensor(w.render_batch(scenes)), scene_labels(scenes)


ENCODER_SETTINGS = {"cnn": {"channels": (16, 32, 64, 64)},
                    "vit": {"image_size": 32, "patch_size": 4, "d_model": 64, "n_layers": 2, "n_heads": 4}}


def config(kind: str = "cnn", encoder_config: dict | None = None) -> AttributeClassifierConfig:
    """The chapter's classifiers, the same on every device: a 4-stage CNN, or a 2-layer ViT on 4x4 patches;
    ``encoder_config`` (fields of CNNConfig or ViTConfig) replaces some of their settings for an experiment."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    return AttributeClassifierConfig(encoder=kind, encoder_config={**ENCODER_SETTINGS[kind], **(encoder_config or {})})


def augment(images: torch.Tensor, noise: float = 0.0, shift: int = 0, jitter: float = 0.0,
            recolour: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly changed copies of a batch, and which of them still show their true colour: (images, kept (B,)).

    recolour: the share of images whose RGB channels are permuted (red becomes green or blue, yellow becomes cyan
    or magenta...): shape, size and position stay, the colour does not. jitter: each channel's contrast to the
    background is scaled by a factor in [1 - jitter, 1 + jitter] (small enough to keep the colour's name). shift:
    each image moves by up to that many pixels (edges repeated). noise: each image gets Gaussian pixel noise with a
    standard deviation drawn from [0, noise].
    """
    B, _, H, W = images.shape
    perm = torch.arange(3).repeat(B, 1)                                          # (B, 3): identity
    for i in torch.nonzero(torch.rand(B) < recolour).flatten().tolist():
        perm[i] = torch.randperm(3)
    kept = (perm == torch.arange(3)).all(dim=1).to(images.device)               # (B,) colour unchanged
    images = images[torch.arange(B)[:, None], perm.to(images.device)]           # (B, 3, H, W), channels permuted
    if jitter > 0:
        bg = torch.tensor(BACKGROUND, dtype=images.dtype, device=images.device).view(1, 3, 1, 1) / 255
        scale = 1 + jitter * (2 * torch.rand(B, 3, 1, 1, device=images.device) - 1)    # (B, 3, 1, 1)
        images = bg + (images - bg) * scale
    if shift > 0:
        padded = F.pad(images, (shift,) * 4, mode="replicate")                   # (B, 3, H + 2s, W + 2s)
        dy, dx = torch.randint(0, 2 * shift + 1, (2, B)).tolist()
        images = torch.stack([padded[i, :, y:y + H, x:x + W] for i, (y, x) in enumerate(zip(dy, dx))])
    if noise > 0:
        sigma = noise * torch.rand(B, 1, 1, 1, device=images.device)                 # (B, 1, 1, 1)
        images = images + sigma * torch.randn_like(images)
    return images.clamp(0, 1), kept


def loss_fn(model: AttributeClassifier, batch, **augmentation) -> torch.Tensor:
    """Sum over attributes of the cross-entropy of that attribute's head on augmented images; the colour term
    counts only the images whose colour the augmentation kept."""
    images, kept = augment(batch[0], **augmentation)
    labels = dict(zip(ATTRIBUTES, batch[1:]))
    logits = model(images)
    ce = {a: F.cross_entropy(logits[a], labels[a], reduction="none") for a in ATTRIBUTES}    # each (B,)
    ce["color"] = ce["color"] * kept / kept.sum().clamp(min=1) * len(kept)
    return sum(c.mean() for c in ce.values())


def noisy(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """images + N(0, sigma^2) noise from a seeded generator, clipped to [0, 1]: the same noise on every machine."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images.device)
    return (images + sigma * noise).clamp(0, 1)


@torch.no_grad()
def accuracy(model: AttributeClassifier, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction correct per attribute, and "all": every attribute of the image right."""
    pred = model.predict(images)
    right = {a: pred[a].cpu() == labels[a] for a in ATTRIBUTES}
    out = {a: r.float().mean().item() for a, r in right.items()}
    out["all"] = torch.stack(list(right.values())).all(dim=0).float().mean().item()
    return out


def train(kind: str = "cnn", steps: int | None = None, seed: int = 0, device: torch.device | str | None = None,
          progress: bool = True, batch_size: int = 64, lr: float | None = None, augmentation: dict | None = None,
          eval_every: int = 50, encoder_config: dict | None = None):
    """Train an AttributeClassifier on the train scenes; return (model, history).

    ``steps`` and ``lr`` default to the kind's entry in SETTINGS, ``augmentation`` (keyword arguments of
    ``augment``) to AUGMENTATION; ``encoder_config`` changes the encoder (see ``config``). The history holds the
    loss of every step and the validation accuracy (mean over attributes) every ``eval_every`` steps.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    steps = SETTINGS[kind]["steps"] if steps is None else steps
    lr = SETTINGS[kind]["lr"] if lr is None else lr
    augmentation = dict(AUGMENTATION if augmentation is None else augmentation)
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    w = world()
    (x_train, y_train), (x_val, y_val) = (tensors(one_object_scenes(w, split), w) for split in ("train", "val"))
    model = AttributeClassifier(config(kind, encoder_config).build_encoder()).to(device)
    loader = DataLoader(TensorDataset(x_train, *y_train.values()), batch_size=batch_size, shuffle=True,
                        generator=generator, drop_last=True)
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)

    def val_accuracy(m):
        acc = accuracy(m, x_val, y_val)
        return {"val_accuracy": sum(acc[a] for a in ATTRIBUTES) / len(ATTRIBUTES)}

    history = run_training(model, loader, lambda m, batch: loss_fn(m, batch, **augmentation), optimizer,
                           steps=steps, scheduler=schedule, eval_fn=val_accuracy, eval_every=eval_every,
                           progress=progress)
    return model.eval(), history


def evaluate(model: AttributeClassifier) -> dict:
    """Test accuracy per attribute and "all" (every attribute right), clean and with pixel noise; the number of
    test images and of parameters."""
    w = world()
    x_test, y_test = tensors(one_object_scenes(w, "test"), w)
    return {"test_accuracy": accuracy(model, x_test, y_test),
            "noisy_test_accuracy": accuracy(model, noisy(x_test, NOISE_EVAL), y_test), "noise_sigma": NOISE_EVAL,
            "n_test": len(x_test), "parameters": count_parameters(model)}


# ----- does recolouring copy held-out combinations into training? ----------------------------------------------------
def nearest_colour(rgb) -> str:
    """The palette colour (``COLORS``) nearest to an RGB triple (0-255), by Euclidean distance."""
    return min(COLORS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLORS[name], rgb)))


def recoloured_twins(train_scenes: list[Scene], scenes: list[Scene]) -> list[list[tuple[str, tuple[int, ...]]]]:
    """For each of ``scenes``: the recoloured training images that show it again, as (training colour, channel
    order). ``augment(recolour=...)`` permutes a training image's RGB channels; the copy keeps shape, size and cell,
    and its colour is the permuted triple. It is a twin of a scene when shape, size and cell agree and the permuted
    colour is nearer to the scene's colour than to any other colour of the palette: the image a colour-blind head
    (shape, size, position) is trained on, in the colour the scene has."""
    by_layout: dict[tuple, list[str]] = {}
    for s in train_scenes:
        o = s.objects[0]
        by_layout.setdefault((o.shape, o.size, o.position), []).append(o.color)
    orders = [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]
    twins = []
    for s in scenes:
        o = s.objects[0]
        twins.append([(c, p) for c in by_layout.get((o.shape, o.size, o.position), []) for p in orders
                      if nearest_colour([COLORS[c][i] for i in p]) == o.color])
    return twins


# ----- with and without recolouring, over seeds (the chapter loads the shipped results) ------------------------------
RESULTS = results_json.path("classifier-augmentation")
RECOLOUR_ARMS = (0.5, 0.0)
SEEDS = (0, 1, 2)


def compare_recolouring(kinds=KINDS, seeds=SEEDS, steps: int | None = None, progress: bool = False) -> list[dict]:
    """Train every kind with and without recolouring (the rest of ``AUGMENTATION`` unchanged) for every seed on
    the CPU; return one row per run with the number of validation scenes right per attribute and in "all". The
    test split is not looked at."""
    w = world()
    x_val, y_val = tensors(one_object_scenes(w, "val"), w)
    rows = []
    for kind, recolour, seed in itertools.product(kinds, RECOLOUR_ARMS, seeds):
        model, _ = train(kind, steps=steps, seed=seed, device="cpu", progress=False,
                         augmentation={**AUGMENTATION, "recolour": recolour})
        acc = accuracy(model, x_val, y_val)
        rows.append({"kind": kind, "recolour": recolour, "seed": seed, "n_val": len(x_val),
                     "val_correct": {a: round(v * len(x_val)) for a, v in acc.items()}})
        if progress:
            print(rows[-1])
    return rows


def write_comparison(path: Path = RESULTS, steps: int | None = None) -> dict:
    """Run ``compare_recolouring`` over ``SEEDS`` at the kinds' ``SETTINGS`` (or ``steps``), and a cheap check row
    (the CNN, seed 0, 20 steps, that a test recomputes); write them with the command that made them as JSON."""
    torch.set_num_threads(1)
    record = {"command": "python -m vitlib.recipes.classifier_shapes --compare", "settings": SETTINGS,
              "augmentation": {k: v for k, v in AUGMENTATION.items() if k != "recolour"}, "seeds": list(SEEDS),
              "runs": compare_recolouring(steps=steps, progress=True),
              "check": compare_recolouring(kinds=("cnn",), seeds=(0,), steps=20)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print("wrote", path)
    return record


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS, steps_help="default: the kind's SETTINGS")
    parser.add_argument("--kind", choices=KINDS, default="cnn")
    parser.add_argument("--compare", action="store_true", help=f"train with and without recolouring over seeds "
                        f"{SEEDS}; write {RESULTS.relative_to(RESULTS.parents[2])}")
    args = parser.parse_args(argv)
    if args.compare:
        write_comparison(steps=args.steps)
        return
    cli.run(sys.modules[__name__], args, kind=args.kind)


if __name__ == "__main__":
    main()
