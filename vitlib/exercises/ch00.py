"""Checkers for chapter 00's exercises: each runs your function on scenes from ShapesWorld and compares it with
the answer the world itself knows."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..data import ShapesWorld, to_tensor
from ..data.render import BACKGROUND
from ..data.language import plural
from . import Case, check, function_name


def _scenes(n: int, seed: int = 7):
    world = ShapesWorld(seed=seed)
    return world, world.scenes(n)


def check_count_shape(count_shape) -> bool:
    """``count_shape(scene, shape) -> int``: how many objects of that shape the scene holds."""
    world, scenes = _scenes(12)
    rng = random.Random(0)
    cases = []
    for i, s in enumerate(scenes):
        shape = s.objects[0].shape if i % 2 == 0 else rng.choice(world.shapes)
        cases.append(Case(args=(s, shape), expected=sum(o.shape == shape for o in s.objects),
                          label=f"{plural(shape)} in {[f'{o.color} {o.shape}' for o in s.objects]}",
                          mistakes={"counted every object, whatever its shape": len(s.objects)}))
    return check(count_shape, cases, name=function_name(count_shape, "count_shape"))


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


def check_partner_rate(partner_rate) -> bool:
    """``partner_rate(scenes, trigger, partner) -> float``: P(partner in scene | trigger in scene)."""
    cases = []
    for bias in (0.0, 0.5, 0.9):
        world = ShapesWorld(seed=11, bias=bias)
        scenes = world.scenes(3000)
        t, p = ("red", "circle"), ("blue", "square")
        cases.append(Case(args=(scenes, t, p), expected=world.cooccurrence(scenes, t, p)["p_partner_given_trigger"],
                          label=f"3000 scenes, bias={bias}", mistakes={
                              "P(partner) over all scenes: count only the scenes that hold the trigger":
                                  float(np.mean([p in s.pairs() for s in scenes])),
                              "P(trigger | partner): condition on the trigger, not on the partner":
                                  world.cooccurrence(scenes, p, t)["p_partner_given_trigger"]}))
    return check(partner_rate, cases, name=function_name(partner_rate, "partner_rate"))
