"""Checkers for chapter 00's exercises: each runs your function on ShapesWorld's images, or on worlds of its
sizes, and compares it with the answer the world itself knows: a tensor, a colour name, the number of different
objects, a predicted co-occurrence rate."""

from __future__ import annotations

import numpy as np
import torch

from ..data import ShapesWorld, to_tensor
from ..data.render import BACKGROUND, GRID
from . import Case, check, function_name


def _scenes(n: int, seed: int = 7):
    world = ShapesWorld(seed=seed)
    return world, world.scenes(n)


def check_images_to_tensor(images_to_tensor) -> bool:
    """``images_to_tensor(images) -> tensor``: uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    batches = []
    for n, size in ((1, 8), (4, 32), (3, 17)):
        world = ShapesWorld(image_size=size, seed=n)
        batches.append((world.render_batch(world.scenes(n)), f"{n} images of {size}x{size}"))
    batches.append((np.full((2, 5, 5, 3), 255, np.uint8), "white images must become 1.0"))
    cases = []
    for images, label in batches:
        x = to_tensor(images)                                                 # (N, 3, H, W) float32
        cases.append(Case(args=(images,), expected=x, label=label, mistakes={
            "channels last: permute (N, H, W, 3) to (N, 3, H, W)": x.permute(0, 2, 3, 1),
            "reshaped to (N, 3, H, W) instead of permuting: the shape is right, the pixels are scrambled":
                torch.from_numpy(images).float().reshape(x.shape) / 255,
            "values still in 0..255: divide by 255": x * 255,
            "still uint8: convert with .float() before dividing by 255": torch.from_numpy(images).permute(0, 3, 1, 2)}))
    return check(images_to_tensor, cases, name=function_name(images_to_tensor, "images_to_tensor"))


def _nearest(pixel, colors: dict, background: bool = True) -> str:
    """The palette name nearest to an RGB pixel (or "background")."""
    names = list(colors) + ["background"] * background
    table = np.array(list(colors.values()) + [BACKGROUND] * background, float)   # (C [+ 1], 3)
    return names[int(np.argmin(((table - np.asarray(pixel, float)) ** 2).sum(1)))]


def check_color_at(color_at) -> bool:
    """``color_at(image, x, y, colors) -> str``: the name of the palette colour nearest to pixel (x, y), or
    "background" when the pixel is nearer the background."""
    world, scenes = _scenes(10, seed=3)
    cases = []
    for s in scenes:
        image = world.render(s)
        for o in s.objects:
            x, y = (int(v) for v in world.center(o))
            cases.append(Case(args=(image, x, y, world.colors), expected=o.color,
                              label=f"centre of the {o.color} {o.shape}",
                              mistakes={"read image[x, y]: rows are y, so the pixel is image[y, x]":
                                        _nearest(image[x, y], world.colors)}))
        cases.append(Case(args=(image, 0, 0, world.colors), expected="background", label="the top-left corner",
                          mistakes={"never answers 'background': compare the pixel with BACKGROUND too":
                                    _nearest(image[0, 0], world.colors, background=False)}))
    assert tuple(world.render(scenes[0])[0, 0]) == BACKGROUND
    return check(color_at, cases, name=function_name(color_at, "color_at"))


def partner_rate_predicted(bias: float, n_pairs: int, max_objects: int) -> float:
    """P(partner | trigger) for ShapesWorld's sampler: k ~ uniform{1..max_objects} objects, k distinct pairs of
    n_pairs; P(k | trigger) is proportional to k, and then each of the other k - 1 objects is the partner with
    probability 1 / (n_pairs - 1). The bias then adds the partner with probability `bias` when it is missing."""
    ks = range(1, max_objects + 1)
    p0 = sum(k * (k - 1) / (n_pairs - 1) for k in ks) / sum(ks)
    return p0 + (1 - p0) * bias


def check_partner_prediction(predict) -> bool:
    """``predict(bias, n_pairs, max_objects) -> float``: P(partner | trigger) before drawing a single scene."""
    cases = []
    for bias, n, m in ((0.0, 26, 3), (0.25, 26, 3), (0.5, 26, 3), (1.0, 26, 3), (0.3, 10, 2), (0.0, 26, 5),
                       (0.7, 6, 4)):
        ks = range(1, m + 1)
        uniform_k = sum((k - 1) / (n - 1) for k in ks) / m                    # P(k | trigger) taken as uniform
        p0 = partner_rate_predicted(0.0, n, m)
        cases.append(Case(args=(bias, n, m), expected=partner_rate_predicted(bias, n, m),
                          label=f"bias={bias}, {n} pairs, up to {m} objects", mistakes={
                              "k taken as uniform given the trigger: a scene with more objects is likelier to "
                              "hold the trigger, so P(k | trigger) is proportional to k":
                                  uniform_k + (1 - uniform_k) * bias,
                              "the bias added on top: it acts only when the partner is missing, so it adds "
                              "(1 - p0) * bias": p0 + bias,
                              "only the bias: the partner also turns up by chance, with probability p0": float(bias),
                              "(k - 1) / n_pairs: the other k - 1 objects are drawn from the n_pairs - 1 pairs "
                              "left": (lambda q: q + (1 - q) * bias)(
                                  sum(k * (k - 1) / n for k in ks) / sum(ks))}))
    return check(predict, cases, name=function_name(predict, "predict"))


def check_n_objects(n_objects) -> bool:
    """``n_objects(world) -> int``: how many different objects (colour, shape, size, cell) train, val and test
    scenes can hold."""
    worlds = [(ShapesWorld(image_size=8), "the default world"),
              (ShapesWorld(image_size=8, holdout=()), "no held-out pairs"),
              (ShapesWorld(image_size=8, colors=["red", "blue"], shapes=["circle", "square", "cross"],
                           holdout=[("red", "cross")], bias_pairs=()), "2 colours, 3 shapes, 1 held out"),
              (ShapesWorld(image_size=8, max_objects=2, colors=["green"], shapes=["diamond", "square"], holdout=(),
                           bias_pairs=()),
               "1 colour, 2 shapes")]
    cases = []
    for world, label in worlds:
        pairs, sizes, cells = len(world.pairs_seen), len(world.sizes), GRID * GRID
        every = len(world.colors) * len(world.shapes)
        cases.append(Case(args=(world,), expected=pairs * sizes * cells, label=label, mistakes={
            "counted the held-out pairs: they never occur outside the 'heldout' split": every * sizes * cells,
            "forgot the sizes: a small and a large red circle are different objects": pairs * cells,
            "forgot the 9 cells: the same shape in another cell is another object (another patch later)":
                pairs * sizes,
            "subtracted each held-out pair once: it is missing in every size and every cell":
                every * sizes * cells - (every - pairs)}))
    return check(n_objects, cases, name=function_name(n_objects, "n_objects"))
