"""Checkers for chapter 00's exercises: each runs your function on scenes from ShapesWorld and compares it with
the answer the world itself knows."""

from __future__ import annotations

import random

import numpy as np

from ..data import ShapesWorld, to_tensor
from ..data.render import BACKGROUND
from ..data.language import plural
from . import Case, check, mismatch


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
                          label=f"{plural(shape)} in {[f'{o.color} {o.shape}' for o in s.objects]}"))
    return check(count_shape, cases, name="count_shape")


def check_images_to_tensor(images_to_tensor) -> bool:
    """``images_to_tensor(images) -> tensor``: uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    cases = []
    for n, size in ((1, 8), (4, 32), (3, 17)):
        world = ShapesWorld(image_size=size, seed=n)
        images = world.render_batch(world.scenes(n))
        cases.append(Case(args=(images,), expected=to_tensor(images), label=f"{n} images of {size}x{size}"))

    def same(got, expected):
        if getattr(got, "dtype", None) != expected.dtype:
            raise AssertionError(f"expected dtype {expected.dtype}, got {getattr(got, 'dtype', type(got).__name__)}")
        problem = mismatch(got, expected)
        if problem:
            raise AssertionError(problem)
    cases.append(Case(args=(np.full((2, 5, 5, 3), 255, np.uint8),), expected=to_tensor(np.full((2, 5, 5, 3), 255, np.uint8)),
                      label="white images must become 1.0"))
    return check(images_to_tensor, cases, name="images_to_tensor", compare=same)


def check_color_at(color_at) -> bool:
    """``color_at(image, x, y, colors) -> str``: the name of the palette colour nearest to pixel (x, y), or
    "background" when the pixel is nearer the background."""
    world, scenes = _scenes(10, seed=3)
    cases = []
    for s in scenes:
        image = world.render(s)
        for o in s.objects:
            x, y = (int(v) for v in world.center(o))
            cases.append(Case(args=(image, x, y, world.colors), expected=o.color, label=f"centre of the {o.color} {o.shape}"))
        cases.append(Case(args=(image, 0, 0, world.colors), expected="background", label="the top-left corner"))
    assert tuple(world.render(scenes[0])[0, 0]) == BACKGROUND
    return check(color_at, cases, name="color_at")


def check_partner_rate(partner_rate) -> bool:
    """``partner_rate(scenes, trigger, partner) -> float``: P(partner in scene | trigger in scene)."""
    cases = []
    for bias in (0.0, 0.5, 0.9):
        world = ShapesWorld(seed=11, bias=bias)
        scenes = world.scenes(3000)
        t, p = ("red", "circle"), ("blue", "square")
        cases.append(Case(args=(scenes, t, p), expected=world.cooccurrence(scenes, t, p)["p_partner_given_trigger"],
                          label=f"3000 scenes, bias={bias}"))
    return check(partner_rate, cases, name="partner_rate")
