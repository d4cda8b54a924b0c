"""ShapesWorld: the procedural world every chapter learns from (chapter 00).

A scene holds 1..max_objects objects, each a (shape, colour, size) in its own cell of a 3x3 grid. Images, captions,
questions, drawing instructions and conversations are all derived from the scene, so every label is exact.

Splits are decided by the scene itself: a scene goes to train, val or test by a hash of its content, so the three
splits can never share a scene. Colour+shape pairs listed in ``holdout`` never appear in train/val/test; the
``"heldout"`` split is made of scenes that contain at least one of them. ``bias`` makes the partner of each
``bias_pairs`` entry co-occur with its trigger, a language prior that later chapters turn into hallucinations.
"""

from __future__ import annotations

import itertools
import random
import zlib
from dataclasses import dataclass

import numpy as np

from . import language
from .render import BACKGROUND, COLORS, GRID, SHAPES, SIZES, box_origin, cell_center, render_sprites, sprites

SPLITS = ("train", "val", "test", "heldout")
DEFAULT_HOLDOUT = (("red", "triangle"), ("green", "cross"), ("blue", "diamond"), ("yellow", "circle"))
DEFAULT_BIAS_PAIRS = (("red", "circle", "blue", "square"),)


@dataclass(frozen=True)
class Obj:
    """One object: its shape, colour, size and grid cell ``position = (row, col)``."""

    shape: str
    color: str
    size: str
    position: tuple[int, int]


@dataclass(frozen=True)
class Scene:
    """A scene: a tuple of objects in distinct cells."""

    objects: tuple[Obj, ...]

    def __len__(self) -> int:
        return len(self.objects)

    def pairs(self) -> set[tuple[str, str]]:
        """The set of (colour, shape) pairs in the scene."""
        return {(o.color, o.shape) for o in self.objects}

    def key(self) -> bytes:
        """A canonical byte string: equal scenes (objects in any order) have equal keys."""
        parts = sorted(f"{o.position[0]}{o.position[1]}{o.color}:{o.shape}:{o.size}" for o in self.objects)
        return "|".join(parts).encode()


def _choice_error(name: str, value, allowed) -> ValueError:
    return ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")


class ShapesWorld:
    """A seeded generator of scenes, images and language about them.

    >>> world = ShapesWorld(image_size=32, max_objects=3, seed=0)
    >>> scenes = world.scenes(4, split="train")
    >>> world.render_batch(scenes).shape
    (4, 32, 32, 3)
    """

    def __init__(
        self,
        image_size: int = 32,
        max_objects: int = 3,
        seed: int = 0,
        holdout=DEFAULT_HOLDOUT,
        bias: float = 0.0,
        bias_pairs=DEFAULT_BIAS_PAIRS,
        colors=None,
        shapes=None,
    ):
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        if not isinstance(max_objects, int) or not 1 <= max_objects <= GRID * GRID:
            raise ValueError(f"max_objects must be an int in 1..{GRID * GRID} (one object per cell), got {max_objects!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not isinstance(bias, (int, float)) or not 0.0 <= bias <= 1.0:
            raise ValueError(f"bias must be a probability in [0, 1], got {bias!r}")
        color_names = list(COLORS) if colors is None else list(colors)
        shape_names = list(SHAPES) if shapes is None else list(shapes)
        for c in color_names:
            if c not in COLORS:
                raise _choice_error("color", c, COLORS)
        for s in shape_names:
            if s not in SHAPES:
                raise _choice_error("shape", s, SHAPES)
        if not color_names or not shape_names:
            raise ValueError("colors and shapes must each name at least one value")
        self.image_size, self.max_objects, self.seed, self.bias = image_size, max_objects, seed, float(bias)
        self.colors = {c: COLORS[c] for c in color_names}
        self.shapes = tuple(shape_names)
        self.sizes = SIZES
        self.holdout = frozenset(self._check_pair(p, "holdout") for p in holdout)
        self.pairs_seen = [(c, s) for c in self.colors for s in self.shapes if (c, s) not in self.holdout]
        if len(self.pairs_seen) < max_objects:
            raise ValueError(f"holdout leaves {len(self.pairs_seen)} colour+shape pairs, fewer than max_objects={max_objects}")
        self.bias_pairs = []
        for entry in bias_pairs:
            if len(entry) != 4:
                raise ValueError(f"each bias pair is (color, shape, partner_color, partner_shape), got {entry!r}")
            trigger, partner = self._check_pair(entry[:2], "bias_pairs"), self._check_pair(entry[2:], "bias_pairs")
            if trigger in self.holdout or partner in self.holdout:
                raise ValueError(f"bias pair {entry!r} uses a held-out colour+shape pair")
            self.bias_pairs.append((trigger, partner))
        self._sprites, _ = sprites(self.shapes, image_size, tuple(self.colors.values()), BACKGROUND)
        self._sprite_index = {  # (shape, size, cell, colour) -> row of the sprite table
            (s, z, cell, c): i
            for i, (s, z, cell, c) in enumerate(itertools.product(self.shapes, self.sizes, range(GRID * GRID), self.colors))
        }
        self.tokenizer = language.tokenizer()

    def _check_pair(self, pair, where: str) -> tuple[str, str]:
        color, shape = tuple(pair)
        if color not in self.colors:
            raise _choice_error(f"color in {where}", color, self.colors)
        if shape not in self.shapes:
            raise _choice_error(f"shape in {where}", shape, self.shapes)
        return color, shape

    def __repr__(self) -> str:
        return (f"ShapesWorld(image_size={self.image_size}, max_objects={self.max_objects}, seed={self.seed}, "
                f"colors={len(self.colors)}, shapes={len(self.shapes)}, holdout={len(self.holdout)}, bias={self.bias})")

    # ----- sampling ---------------------------------------------------------------------------------------------
    @staticmethod
    def split_of(scene: Scene) -> str:
        """Which of train/val/test a scene without held-out pairs belongs to: 80/10/10 by a hash of its content."""
        bucket = zlib.crc32(scene.key()) % 10
        return "train" if bucket < 8 else ("val" if bucket == 8 else "test")

    def _sample(self, rng: random.Random, heldout: bool) -> Scene:
        k = rng.randint(1, self.max_objects)
        cells = rng.sample(range(GRID * GRID), k)
        if heldout:  # one held-out pair, the rest drawn from every pair of the world
            first = rng.choice(sorted(self.holdout))
            pool = [(c, s) for c in self.colors for s in self.shapes if (c, s) != first]
            pairs = [first] + rng.sample(pool, k - 1)
        else:
            pairs = rng.sample(self.pairs_seen, k)
        for trigger, partner in self.bias_pairs:
            if trigger in pairs and partner not in pairs and rng.random() < self.bias:
                if k < self.max_objects:  # add the partner in a free cell
                    cells.append(rng.choice([c for c in range(GRID * GRID) if c not in cells]))
                    pairs.append(partner)
                else:  # replace an object other than the trigger
                    others = [i for i, p in enumerate(pairs) if p != trigger]
                    pairs[rng.choice(others)] = partner
        objects = tuple(
            Obj(shape=s, color=c, size=rng.choice(self.sizes), position=divmod(cell, GRID))
            for (c, s), cell in zip(pairs, cells)
        )
        return Scene(objects)

    def scenes(self, n: int, split: str = "train") -> list[Scene]:
        """The first ``n`` scenes of a split; the same (seed, split, n) always gives the same scenes."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if split not in SPLITS:
            raise _choice_error("split", split, SPLITS)
        if split == "heldout" and not self.holdout:
            raise ValueError("this world has no held-out pairs (holdout=()), so it has no 'heldout' split")
        rng = random.Random(self.seed * 1_000_003 + SPLITS.index(split))
        out = []
        while len(out) < n:
            scene = self._sample(rng, heldout=split == "heldout")
            if split == "heldout" or self.split_of(scene) == split:
                out.append(scene)
        return out

    def check_scene(self, scene: Scene) -> None:
        """Raise ValueError if a scene uses names outside this world or puts two objects in one cell."""
        if not isinstance(scene, Scene):
            raise TypeError(f"expected a Scene, got {type(scene).__name__}")
        if not 1 <= len(scene.objects) <= GRID * GRID:
            raise ValueError(f"a scene holds 1..{GRID * GRID} objects, got {len(scene.objects)}")
        cells = [o.position for o in scene.objects]
        if len(set(cells)) != len(cells):
            raise ValueError(f"two objects share a cell: positions {cells}")
        for o in scene.objects:
            self._check_pair((o.color, o.shape), "scene")
            if o.size not in self.sizes:
                raise _choice_error("size", o.size, self.sizes)
            if not (isinstance(o.position, tuple) and len(o.position) == 2 and all(0 <= p < GRID for p in o.position)):
                raise ValueError(f"position must be a (row, col) cell with values in 0..{GRID - 1}, got {o.position!r}")

    # ----- pixels -----------------------------------------------------------------------------------------------
    def center(self, obj: Obj) -> tuple[float, float]:
        """Pixel coordinates (x, y) of an object's centre in this world's images."""
        return cell_center(obj.position, self.image_size)

    def render(self, scene: Scene) -> np.ndarray:
        """One scene -> uint8 image (H, W, 3); the same pixels as ``render_batch([scene])[0]``."""
        image = np.empty((self.image_size, self.image_size, 3), np.int16)
        image[:] = BACKGROUND
        B = self._sprites.shape[1]
        for o in scene.objects:
            cell = o.position[0] * GRID + o.position[1]
            key = (o.shape, o.size, cell, o.color)
            if key not in self._sprite_index:
                self.check_scene(scene)  # names the bad value
            y0, x0 = box_origin(o.position, self.image_size)
            image[y0:y0 + B, x0:x0 + B] += self._sprites[self._sprite_index[key]]
        return image.astype(np.uint8)

    def render_batch(self, scenes) -> np.ndarray:
        """A list of scenes -> uint8 images (N, H, W, 3)."""
        scenes = list(scenes)
        k = max((len(s.objects) for s in scenes), default=0)
        sprite = np.full((len(scenes), k), -1, np.int64)
        cell = np.full((len(scenes), k), -1, np.int64)
        for i, scene in enumerate(scenes):
            for j, o in enumerate(scene.objects):
                key = (o.shape, o.size, o.position[0] * GRID + o.position[1], o.color)
                if key not in self._sprite_index:
                    self.check_scene(scene)  # names the bad value
                sprite[i, j], cell[i, j] = self._sprite_index[key], key[2]
        return render_sprites(sprite, cell, self.image_size, self._sprites, BACKGROUND)

    # ----- language (see vitlib.data.language) ------------------------------------------------------------------
    def caption(self, scene: Scene, rng=None) -> str:
        """A caption of the scene in one of several templates and word orders."""
        return language.caption(scene, _rng(rng, scene))

    def questions(self, scene: Scene, rng=None) -> list[tuple[str, str, str]]:
        """(question, answer, type) triples with types color, shape, count, position, exists, relation."""
        return language.questions(scene, _rng(rng, scene), self.pairs_seen)

    def instruction(self, scene: Scene, rng=None) -> str:
        """A drawing instruction, e.g. "draw a small red circle at the top left"."""
        return language.instruction(scene, _rng(rng, scene))

    def conversation(self, scene: Scene, rng=None) -> list[dict[str, str]]:
        """A multi-turn chat about the scene: [{"role": "user"|"assistant", "content": ...}, ...]."""
        return language.conversation(scene, _rng(rng, scene), self.pairs_seen)

    def parse_caption(self, text: str, strict: bool = True) -> set[tuple[str, str]]:
        """The set of (colour, shape) pairs a text mentions; strict raises ValueError outside the grammar."""
        return language.parse_caption(text, strict=strict)

    def cooccurrence(self, scenes, trigger: tuple[str, str], partner: tuple[str, str]) -> dict[str, float]:
        """How strongly ``partner`` follows ``trigger``: P(partner | trigger) and P(partner | no trigger)."""
        with_t = [partner in s.pairs() for s in scenes if trigger in s.pairs()]
        without_t = [partner in s.pairs() for s in scenes if trigger not in s.pairs()]
        rate = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        return {"p_partner_given_trigger": rate(with_t), "p_partner_given_no_trigger": rate(without_t),
                "n_trigger": len(with_t)}


def _rng(rng, scene: Scene) -> random.Random:
    """The caller's rng, or one seeded by the scene so the same scene always reads the same."""
    if rng is None:
        return random.Random(zlib.crc32(scene.key()))
    if isinstance(rng, int):
        return random.Random(rng)
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be None, an int seed or a random.Random, got {type(rng).__name__}")
    return rng
