"""Recipe for chapter 09's judge: chapter 04's attribute classifier, retrained to read degraded images (chapter 09).

Chapter 09 scores generated images by the colour, shape, size and position the attribute classifier reads in them.
Generated images are not clean renders, so the judge is first measured on degraded test renders
(``vitlib.degrade.LEVELS``: Gaussian blur, pixel noise, colour jitter, resampling through 16 or 24 pixels, all of
them at once; and ``RENDERED_24``: renders drawn at 24x24, the CLIP chapter's size, resized to 32x32). Chapter 04's
"shapes-classifier" reads clean, lightly noisy and jittered renders (almost) perfectly, but not blurred or small ones:
at blur sigma 1 px it names 35% of the shapes, through 24 pixels 61%, drawn at 24 pixels 74% (57 test scenes x 4
draws; data/results/shapes-judge.json). So the judge is the same AttributeClassifier (same CNN, same one-object
world and splits), trained on the train scenes drawn at 32 and at 24 pixels, degraded by
``vitlib.degrade.random_degrade`` at random strengths on top of chapter 04's augmentation (3000 steps, 209 s on
one core). Its record states every level with Wilson intervals: colour, size and position stay >= 0.95 everywhere;
shape is 98% clean, 77% at blur 1 px, 82% through 24 pixels, 91% drawn at 24 pixels, and every large object's
shape is read up to blur 1 px. A small object (6 pixels across) loses its shape to blur first: under strong blur
(1.5 px, or everything at once) the judge names 36 and 54 of 140 small shapes, 72 and 63 of 88 large ones, so a
shape figure on images that blurred is a lower bound.

What it judges: one object per image, 32x32 (other sizes are resized by ``judge``), as the classifier was built
for: its position head names one of nine cells of the whole image, so a multi-object image has no single answer.
For a multi-object scene, ``isolate_cell`` blanks every other cell to the background, and the judge reads that
one-object image (chapter 09 asks it about the cells the prompt names): on 200 test scenes of one to three objects
it reads 378 of 380 objects right in every attribute (``per_cell``).

    python -m vitlib.recipes.shapes_judge --save      # trains on the CPU, writes data/zoo/shapes-judge.*
    python -m vitlib.recipes.shapes_judge --measure   # both classifiers at every level: data/results/shapes-judge.json
    python -m vitlib.recipes.shapes_judge --reevaluate  # the shipped judge's figures again
"""

from __future__ import annotations

import itertools
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import cli, results_json
from .classifier_shapes import AUGMENTATION, config, loss_fn, tensors, world
from .classifier_shapes import NAME as CLASSIFIER_NAME
from .. import zoo
from ..classifier import ATTRIBUTES, AttributeClassifier, scene_labels
from ..data import Scene, ShapesWorld, one_object_scenes, to_tensor
from ..data.render import BACKGROUND, GRID
from ..degrade import LEVELS, check_batch, degrade, random_degrade
from ..metrics import wilson_interval
from ..train import param_groups, train as run_training
from ..utils import count_parameters, get_device, seed_everything

NAME = "shapes-judge"
STEPS = 3000
LR = 1e-2
DEGRADATION = {"p": 0.5, "max_blur": 1.2, "max_noise": 0.2, "max_jitter": 0.3}   # random_degrade
DRAWS = 4            # degraded copies of each test scene per level (each draw its own noise and jitter)
IMAGE_SIZE = 32
RESULTS = "shapes-judge"
RENDERED_24 = "rendered at 24"
MEASURED = (*LEVELS, RENDERED_24)


def judge(model: AttributeClassifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{attribute: predicted index (B,)} for float images (B, 3, S, S) in [0, 1]; any S other than 32 is resized
    to 32 (bilinear), so a 24x24 generator is judged like a 32x32 one."""
    return model.predict(to_judge_size(images).clamp(0, 1))


def to_judge_size(images: torch.Tensor) -> torch.Tensor:
    """Square images (B, 3, S, S) -> (B, 3, 32, 32), bilinear (antialiased when shrinking); 32x32 as they are."""
    check_batch(images)
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be square, got {images.shape[-2]}x{images.shape[-1]}")
    if images.shape[-1] == IMAGE_SIZE:
        return images
    return F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > IMAGE_SIZE)


def isolate_cell(images: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """Images (B, 3, H, W) with every pixel whose centre lies outside grid cell (row, col) set to the background:
    a one-object image of that cell's object, which the judge can read."""
    check_batch(images)
    if not (isinstance(cell, tuple) and len(cell) == 2 and all(isinstance(c, int) and 0 <= c < GRID for c in cell)):
        raise ValueError(f"cell must be a (row, col) tuple with values in 0..{GRID - 1}, got {cell!r}")
    H, W = images.shape[-2:]
    rows = ((torch.arange(H) + 0.5) * GRID / H).floor().long() == cell[0]      # (H,) pixel centre in the cell row
    cols = ((torch.arange(W) + 0.5) * GRID / W).floor().long() == cell[1]      # (W,)
    inside = (rows[:, None] & cols[None, :]).to(images.device)                  # (H, W)
    bg = torch.tensor(BACKGROUND, dtype=images.dtype, device=images.device).view(1, 3, 1, 1) / 255
    return torch.where(inside, images, bg)


def rendered_at(size: int, split: str = "train"):
    """Every one-object scene of ``split`` rendered at size x size and resized to the judge's 32x32: (images,
    labels). 24 is the CLIP chapter's image size, which chapter 09's generators draw at."""
    w = ShapesWorld(image_size=size, max_objects=1, holdout=(), seed=0)
    scenes = one_object_scenes(w, split)
    return to_judge_size(to_tensor(w.render_batch(scenes))), scene_labels(scenes)


def degraded_test_set(level: str, split: str = "test", draws: int = DRAWS, seed: int = 0):
    """Every one-object scene of ``split``, ``draws`` times, degraded at ``level``: (images, labels). The level
    ``RENDERED_24`` (not a degradation of ``LEVELS``) is the scenes rendered at 24x24, resized to 32x32."""
    if level == RENDERED_24:
        return rendered_at(24, split)
    x, y = tensors(one_object_scenes(world(), split))
    x, y = x.repeat(draws, 1, 1, 1), {a: v.repeat(draws) for a, v in y.items()}
    return degrade(x, level, torch.Generator().manual_seed(seed)), y


def correct_counts(model: AttributeClassifier, images: torch.Tensor, labels: dict) -> dict[str, int]:
    """How many images have each attribute right, and every attribute ("all")."""
    pred = judge(model, images)
    right = {a: pred[a].cpu() == labels[a] for a in ATTRIBUTES}
    right["all"] = torch.stack(list(right.values())).all(dim=0)
    return {a: int(r.sum()) for a, r in right.items()}


def measure(model: AttributeClassifier, split: str = "test", levels=MEASURED, draws: int = DRAWS) -> dict:
    """For each degradation level: {"n": images, "correct": {attribute: count}, "accuracy": ..., "interval":
    Wilson 95% per attribute}. The images are ``draws`` degraded copies of each scene, so the intervals count
    images: about as wide as for independent images where the draws change the answer, too narrow where they do not
    (the scenes themselves number n / draws)."""
    out = {}
    for level in levels:
        x, y = degraded_test_set(level, split, draws)
        counts = correct_counts(model, x, y)
        n = len(x)
        out[level] = {"n": n, "correct": counts, "accuracy": {a: round(c / n, 4) for a, c in counts.items()},
                      "interval": {a: [round(v, 4) for v in wilson_interval(c, n)] for a, c in counts.items()},
                      "shape_by_size": shape_by_size(model, x, y)}
    return out


def shape_by_size(model: AttributeClassifier, images: torch.Tensor, labels: dict) -> dict:
    """Shape accuracy of small and of large objects apart: {size: {"correct", "n", "interval"}}. Blur takes the
    shape of a small object (6 pixels across at 32x32) first."""
    right = judge(model, images)["shape"].cpu() == labels["shape"]
    out = {}
    for i, size in enumerate(ATTRIBUTES["size"]):
        r = right[labels["size"] == i]
        k = int(r.sum())
        out[size] = {"correct": k, "n": len(r), "interval": [round(v, 4) for v in wilson_interval(k, len(r))]}
    return out


def per_cell(model: AttributeClassifier, n: int = 200, seed: int = 0) -> dict:
    """Judge every object of ``n`` test scenes of one to three objects (32x32, no held-out pairs) by
    ``isolate_cell``: {attribute: {"correct", "n", "interval"}}, n counting objects."""
    w = ShapesWorld(image_size=IMAGE_SIZE, max_objects=3, holdout=(), seed=seed)
    scenes = w.scenes(n, "test")
    images = to_tensor(w.render_batch(scenes))
    right = {a: [] for a in (*ATTRIBUTES, "all")}
    for cell in itertools.product(range(GRID), repeat=2):
        rows = [i for i, s in enumerate(scenes) if any(o.position == cell for o in s.objects)]
        if not rows:
            continue
        pred = judge(model, isolate_cell(images[rows], cell))
        labels = scene_labels([Scene(tuple(o for o in scenes[i].objects if o.position == cell)) for i in rows])
        ok = {a: pred[a].cpu() == labels[a] for a in ATTRIBUTES}
        ok["all"] = torch.stack(list(ok.values())).all(dim=0)
        for a, r in ok.items():
            right[a].append(r)
    out = {}
    for a, parts in right.items():
        r = torch.cat(parts)
        k = int(r.sum())
        out[a] = {"correct": k, "n": len(r), "interval": [round(v, 4) for v in wilson_interval(k, len(r))]}
    return out


def train(steps: int = STEPS, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
          batch_size: int = 64, lr: float = LR, eval_every: int = 100):
    """Train the judge: chapter 04's CNN classifier on train scenes, rendered at 32x32 and at 24x24 (resized to 32),
    degraded by ``random_degrade`` (then chapter 04's ``augment``); the history logs the mean accuracy over
    attributes on degraded ("all") validation scenes."""
    device = get_device() if device is None else torch.device(device)
    generator = seed_everything(seed)
    degrade_generator = torch.Generator().manual_seed(seed + 1)
    x_32, y_32 = tensors(one_object_scenes(world(), "train"))
    x_24, y_24 = rendered_at(24, "train")                  # what a 24x24 generator's images look like to the judge
    x_train, y_train = torch.cat([x_32, x_24]), {a: torch.cat([y_32[a], y_24[a]]) for a in ATTRIBUTES}
    x_val, y_val = degraded_test_set("all", "val", draws=2)
    model = AttributeClassifier(config("cnn").build_encoder()).to(device)
    loader = DataLoader(TensorDataset(x_train, *y_train.values()), batch_size=batch_size, shuffle=True,
                        generator=generator, drop_last=True)
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)

    def step_loss(m, batch):
        images = random_degrade(batch[0].cpu(), degrade_generator, **DEGRADATION).to(batch[0].device)
        return loss_fn(m, (images, *batch[1:]), **AUGMENTATION)

    def val_accuracy(m):
        counts = correct_counts(m, x_val, y_val)
        return {"val_degraded_accuracy": sum(counts[a] for a in ATTRIBUTES) / len(ATTRIBUTES) / len(x_val)}

    history = run_training(model, loader, step_loss, optimizer, steps=steps, scheduler=schedule,
                           eval_fn=val_accuracy, eval_every=eval_every, progress=progress)
    return model.eval(), history


def evaluate(model: AttributeClassifier) -> dict:
    """Test accuracy per attribute with Wilson intervals at every level of ``MEASURED`` (and shape accuracy by
    object size); the parameter count."""
    return {"levels": measure(model), "draws": DRAWS, "parameters": count_parameters(model)}


def write_measurements(judge_model: AttributeClassifier | None = None) -> dict:
    """Chapter 04's classifier and the judge at every level, on test scenes: data/results/shapes-judge.json."""
    judge_model = zoo.load(NAME) if judge_model is None else judge_model
    classifier = zoo.load(CLASSIFIER_NAME)
    results = {CLASSIFIER_NAME: measure(classifier), NAME: measure(judge_model),
               "per_cell": {CLASSIFIER_NAME: per_cell(classifier), NAME: per_cell(judge_model)}}
    settings = {"levels": {k: [list(p) for p in v] for k, v in LEVELS.items()}, "draws": DRAWS,
                "split": "test", "seed": 0}
    print("wrote", results_json.save(RESULTS, settings, results, "python -m vitlib.recipes.shapes_judge --measure"))
    return results


def main(argv=None) -> None:
    parser = cli.parser(__doc__.split("\n")[0], NAME, steps=STEPS)
    parser.add_argument("--measure", action="store_true", help="measure shapes-classifier and shapes-judge at every "
                        "level; write data/results/shapes-judge.json")
    parser.add_argument("--reevaluate", action="store_true", help="recompute the shipped judge's figures")
    args = parser.parse_args(argv)
    if args.reevaluate:
        cli.reevaluate(sys.modules[__name__])
        return
    if args.measure:
        torch.set_num_threads(1)
        write_measurements()
        return
    cli.run(sys.modules[__name__], args)


if __name__ == "__main__":
    main()
