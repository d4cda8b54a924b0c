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
from collections.abc import Iterable

import numpy as np

from . import language
from .render import (BACKGROUND, COLORS, GRID, SHAPES, SIZES, box_origin, cell_center, check_bytes, check_image_size,
                     render_sprites, sprites)
from .scene import Obj, Scene, check_pair, check_scene, choice_error

SPLITS = ("train", "val", "test", "heldout")
DEFAULT_HOLDOUT = (("red", "triangle"), ("green", "cross"), ("blue", "diamond"), ("yellow", "circle"))
DEFAULT_BIAS_PAIRS = (("red", "circle", "blue", "square"),)
# Scenes one call may draw: a million take ~0.5 GB of Python objects and about a minute on one core.
MAX_SCENES = 1_000_000


def _entries(values, what: str) -> list:
    """A list of the entries of a collection argument; a bare string (iterable letter by letter) is refused."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a list, got {values!r}")
    return list(values)


def _names(values, known, what: str) -> list[str]:
    """The colour or shape names a world is built from: a non-empty list of distinct known names."""
    values = _entries(values, f"{what}s")
    for v in values:
        if not isinstance(v, str) or v not in known:
            raise choice_error(what, v, known)
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{what}s must name at least one {what}, each once, got {values!r}")
    return values


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


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
        check_image_size(image_size)
        if not _is_int(max_objects) or not 1 <= max_objects <= GRID * GRID:
            raise ValueError(f"max_objects must be an int in 1..{GRID * GRID} (one object per cell), got {max_objects!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not 0.0 <= bias <= 1.0:
            raise ValueError(f"bias must be a probability in [0, 1], got {bias!r}")
        color_names = list(COLORS) if colors is None else _names(colors, COLORS, "color")
        shape_names = list(SHAPES) if shapes is None else _names(shapes, SHAPES, "shape")
        self.image_size, self.max_objects, self.seed, self.bias = image_size, max_objects, seed, float(bias)
        self.colors = {c: COLORS[c] for c in color_names}
        self.shapes = tuple(shape_names)
        self.sizes = SIZES
        self.holdout = frozenset(self._check_pair(p, "holdout") for p in _entries(holdout, "holdout"))
        self.pairs_seen = [(c, s) for c in self.colors for s in self.shapes if (c, s) not in self.holdout]
        if len(self.pairs_seen) < max_objects:
            raise ValueError(f"holdout leaves {len(self.pairs_seen)} colour+shape pairs, fewer than max_objects={max_objects}")
        self.bias_pairs = []
        for entry in _entries(bias_pairs, "bias_pairs"):
            if not isinstance(entry, (tuple, list)) or len(entry) != 4:
                raise ValueError(f"each bias pair is (color, shape, partner_color, partner_shape), got {entry!r}")
            trigger, partner = self._check_pair(entry[:2], "bias_pairs"), self._check_pair(entry[2:], "bias_pairs")
            if trigger in self.holdout or partner in self.holdout:
                raise ValueError(f"bias pair {entry!r} uses a held-out colour+shape pair")
            if trigger == partner:
                raise ValueError(f"bias pair {entry!r} has its partner equal to its trigger, so it could never act")
            self.bias_pairs.append((trigger, partner))
        if self.bias > 0 and self.bias_pairs and max_objects < 2:
            raise ValueError(f"bias={bias} needs max_objects >= 2, room for a partner beside its trigger; "
                             f"got max_objects={max_objects} (pass bias=0 or bias_pairs=())")
        self._sprites, _ = sprites(self.shapes, image_size, tuple(self.colors.values()), BACKGROUND)
        self._sprite_index = {  # (shape, size, cell, colour) -> row of the sprite table
            (s, z, cell, c): i
            for i, (s, z, cell, c) in enumerate(itertools.product(self.shapes, self.sizes, range(GRID * GRID), self.colors))
        }
        self.tokenizer = language.tokenizer()

    def _check_pair(self, pair, where: str) -> tuple[str, str]:
        return check_pair(pair, self.colors, self.shapes, where)

    def __repr__(self) -> str:
        return (f"ShapesWorld(image_size={self.image_size}, max_objects={self.max_objects}, seed={self.seed}, "
                f"bias={self.bias})")  # the colours, shapes and held-out pairs are its attributes

    # ----- sampling ---------------------------------------------------------------------------------------------
    @staticmethod
    def split_of(scene: Scene) -> str:
        """Which of train/val/test a scene without held-out pairs belongs to: 80/10/10 by a hash of its content."""
        if not isinstance(scene, Scene):
            raise TypeError(f"expected a Scene, got {type(scene).__name__}")
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
                if len(pairs) < self.max_objects:  # add the partner in a free cell (an earlier pair may have added one)
                    cells.append(rng.choice([c for c in range(GRID * GRID) if c not in cells]))
                    pairs.append(partner)
                else:  # replace an object other than the trigger, and other than a held-out scene's held-out pair
                    others = [i for i, p in enumerate(pairs) if p != trigger and not (heldout and i == 0)]
                    if others:
                        pairs[rng.choice(others)] = partner
        objects = tuple(
            Obj(shape=s, color=c, size=rng.choice(self.sizes), position=divmod(cell, GRID))
            for (c, s), cell in zip(pairs, cells)
        )
        return Scene(objects)

    def _biased(self, cells: tuple, pairs: tuple, step: int = 0):
        """Every (cells, pairs) the bias step of ``_sample`` can make of a draw outside the held-out split."""
        if step == len(self.bias_pairs):
            yield cells, pairs
            return
        trigger, partner = self.bias_pairs[step]
        fires = trigger in pairs and partner not in pairs
        if not fires or self.bias < 1:  # rng.random() >= bias leaves the draw as it is
            yield from self._biased(cells, pairs, step + 1)
        if fires and self.bias > 0:
            if len(pairs) < self.max_objects:
                for cell in (c for c in range(GRID * GRID) if c not in cells):
                    yield from self._biased(cells + (cell,), pairs + (partner,), step + 1)
            else:
                for i in (i for i, p in enumerate(pairs) if p != trigger):
                    yield from self._biased(cells, pairs[:i] + (partner,) + pairs[i + 1:], step + 1)

    def _split_is_possible(self, split: str) -> bool:
        """Can ``_sample`` ever draw a scene of train/val/test ``split``? A hash decides, so a tiny world may leave a
        split empty. Walks every scene it can draw, smallest first, and stops at the first of ``split``: a few
        dozen in a usual world, the whole (then small) scene space when the split is empty."""
        draws = ((cells, pairs) for k in range(1, self.max_objects + 1)
                 for cells in itertools.combinations(range(GRID * GRID), k)
                 for pairs in itertools.permutations(self.pairs_seen, k))
        for cells, pairs in (outcome for draw in draws for outcome in self._biased(*draw)):
            for sizes in itertools.product(self.sizes, repeat=len(pairs)):
                objects = (Obj(s, c, z, divmod(cell, GRID)) for (c, s), cell, z in zip(pairs, cells, sizes))
                if self.split_of(Scene(tuple(objects))) == split:
                    return True
        return False

    def scenes(self, n: int, split: str = "train") -> list[Scene]:
        """The first ``n`` scenes of a split; the same (seed, split, n) always gives the same scenes.

        Scenes may repeat (a small world holds few distinct ones); a split no scene of the world falls in raises."""
        if not _is_int(n) or not 0 <= n <= MAX_SCENES:
            raise ValueError(f"n must be a non-negative int, at most {MAX_SCENES:,} (MAX_SCENES), got {n!r}")
        if not isinstance(split, str) or split not in SPLITS:
            raise choice_error("split", split, SPLITS)
        if split == "heldout" and not self.holdout:
            raise ValueError("this world has no held-out pairs (holdout=()), so it has no 'heldout' split")
        if split != "heldout" and not self._split_is_possible(split):
            raise ValueError(f"no scene of this world falls in split {split!r} (the split is a hash of the scene), so "
                             f"{n} scenes of it cannot be drawn; {self!r} has too few colours, shapes or objects")
        rng = random.Random(self.seed * 1_000_003 + SPLITS.index(split))
        out = []
        while len(out) < n:
            scene = self._sample(rng, heldout=split == "heldout")
            if split == "heldout" or self.split_of(scene) == split:
                out.append(scene)
        return out

    def check_scene(self, scene: Scene) -> None:
        """Raise unless ``scene`` is a Scene of this world's colours, shapes and sizes (a Scene checks its cells)."""
        check_scene(scene, self.colors, self.shapes, self.sizes)

    # ----- pixels -----------------------------------------------------------------------------------------------
    def center(self, obj: Obj) -> tuple[float, float]:
        """Pixel coordinates (x, y) of an object's centre in this world's images."""
        if not isinstance(obj, Obj):
            raise TypeError(f"expected an Obj, got {type(obj).__name__}")
        return cell_center(obj.position, self.image_size)

    def render(self, scene: Scene) -> np.ndarray:
        """One scene -> uint8 image (H, W, 3); the same pixels as ``render_batch([scene])[0]``."""
        self.check_scene(scene)
        image = np.empty((self.image_size, self.image_size, 3), np.int16)
        image[:] = BACKGROUND
        B = self._sprites.shape[1]
        for o in scene.objects:
            key = (o.shape, o.size, o.position[0] * GRID + o.position[1], o.color)
            y0, x0 = box_origin(o.position, self.image_size)
            image[y0:y0 + B, x0:x0 + B] += self._sprites[self._sprite_index[key]]
        return image.astype(np.uint8)

    def render_batch(self, scenes) -> np.ndarray:
        """A list of scenes -> uint8 images (N, H, W, 3)."""
        scenes = _scene_list(scenes, "render_batch")
        check_bytes(len(scenes) * self.image_size**2 * 3 * 3, f"render_batch of {len(scenes)} scenes of "
                    f"{self.image_size}x{self.image_size} (int16 work array and uint8 images)")
        for scene in scenes:
            self.check_scene(scene)  # the checks render makes, so the two agree
        k = max((len(s.objects) for s in scenes), default=0)
        sprite = np.full((len(scenes), k), -1, np.int64)
        cell = np.full((len(scenes), k), -1, np.int64)
        for i, scene in enumerate(scenes):
            for j, o in enumerate(scene.objects):
                key = (o.shape, o.size, o.position[0] * GRID + o.position[1], o.color)
                sprite[i, j], cell[i, j] = self._sprite_index[key], key[2]
        return render_sprites(sprite, cell, self.image_size, self._sprites, BACKGROUND)

    # ----- language (see vitlib.data.language) ------------------------------------------------------------------
    def caption(self, scene: Scene, rng=None) -> str:
        """A caption of the scene in one of several templates and word orders."""
        self.check_scene(scene)
        return language.caption(scene, _rng(rng, scene))

    def questions(self, scene: Scene, rng=None) -> list[tuple[str, str, str]]:
        """(question, answer, type) triples with types color, shape, count, position, exists, relation."""
        self.check_scene(scene)
        return language.questions(scene, _rng(rng, scene), self.pairs_seen)

    def instruction(self, scene: Scene, rng=None) -> str:
        """A drawing instruction, e.g. "draw a small red circle at the top left"."""
        self.check_scene(scene)
        return language.instruction(scene, _rng(rng, scene))

    def conversation(self, scene: Scene, rng=None) -> list[dict[str, str]]:
        """A multi-turn chat about the scene: [{"role": "user"|"assistant", "content": ...}, ...]."""
        self.check_scene(scene)
        return language.conversation(scene, _rng(rng, scene), self.pairs_seen)

    def parse_caption(self, text: str, strict: bool = True) -> set[tuple[str, str]]:
        """The set of (colour, shape) pairs a text mentions; strict raises ValueError outside the grammar."""
        return language.parse_caption(text, strict=strict)

    def cooccurrence(self, scenes, trigger: tuple[str, str], partner: tuple[str, str]) -> dict[str, float]:
        """How strongly ``partner`` follows ``trigger``: P(partner | trigger) and P(partner | no trigger).

        A rate is NaN when no scene (or every scene) holds the trigger; ``n_trigger`` then says 0 (or all)."""
        scenes = _scene_list(scenes, "cooccurrence")
        if not scenes:
            raise ValueError("cooccurrence needs at least one scene, got none")
        trigger, partner = self._check_pair(trigger, "trigger"), self._check_pair(partner, "partner")
        with_t = [partner in s.pairs() for s in scenes if trigger in s.pairs()]
        without_t = [partner in s.pairs() for s in scenes if trigger not in s.pairs()]
        rate = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
        return {"p_partner_given_trigger": rate(with_t), "p_partner_given_no_trigger": rate(without_t),
                "n_trigger": len(with_t)}


def _scene_list(scenes, where: str) -> list[Scene]:
    if isinstance(scenes, (Scene, str)) or not isinstance(scenes, Iterable):
        raise TypeError(f"{where} expects a list of Scenes, got {type(scenes).__name__}")
    scenes = list(scenes)  # a generator would be read only once
    bad = [type(s).__name__ for s in scenes if not isinstance(s, Scene)]
    if bad:
        raise TypeError(f"{where} expects a list of Scenes, got an element of type {bad[0]}")
    return scenes


def _rng(rng, scene: Scene) -> random.Random:
    """The caller's rng, or one seeded by the scene so the same scene always reads the same."""
    if rng is None:
        return random.Random(zlib.crc32(scene.key()))
    if _is_int(rng):
        return random.Random(rng)
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be None, an int seed or a random.Random, got {type(rng).__name__}")
    return rng
