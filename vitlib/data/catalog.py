"""Scene sets that chapters enumerate rather than sample (chapters 04-06).

    one_object_scenes(world, split)   every distinct one-object scene of a split, in a fixed order
    distinct_scenes(world, n, split)   the first n distinct scenes the world draws for a split
"""

from __future__ import annotations

import itertools

from ..checks import check_int
from .render import GRID
from .scene import Obj, Scene
from .shapes import SPLITS, ShapesWorld

__all__ = ["one_object_scenes", "distinct_scenes"]


def _check(world, split: str) -> None:
    if not isinstance(world, ShapesWorld):
        raise TypeError(f"world must be a ShapesWorld, got {type(world).__name__}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


def one_object_scenes(world: ShapesWorld, split: str) -> list[Scene]:
    """Every one-object scene (colour x shape x size x cell) of a split: train/val/test by the world's hash
    (held-out pairs excluded), or "heldout" (only held-out pairs)."""
    _check(world, split)
    scenes = [Scene((Obj(shape, color, size, divmod(cell, GRID)),))
              for color, shape, size, cell in itertools.product(world.colors, world.shapes, world.sizes,
                                                                 range(GRID * GRID))]
    if split == "heldout":
        return [s for s in scenes if s.pairs() <= world.holdout]
    return [s for s in scenes if not s.pairs() & world.holdout and ShapesWorld.split_of(s) == split]


def distinct_scenes(world: ShapesWorld, n: int, split: str) -> list[Scene]:
    """The first ``n`` distinct scenes of ``world.scenes(..., split)`` (always the same ones). Draws twice as many
    until n are distinct; raises when doubling the draws finds no new scene (the split holds fewer than n)."""
    _check(world, split)
    check_int(n, "n", maximum=None)
    draws, found = n, 0
    while True:
        scenes = list(dict((s.key(), s) for s in world.scenes(draws, split)).values())
        if len(scenes) >= n:
            return scenes[:n]
        if len(scenes) == found:
            raise ValueError(f"split {split!r} of {world} holds only {found} distinct scenes, fewer than n={n}")
        draws, found = draws * 2, len(scenes)
