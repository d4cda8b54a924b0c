"""Attribute binding: does a model know which colour goes with which shape? (chapters 05-06)

A caption and its swap hold the same words: "a red circle at the top left and a blue square on the right" against
"a blue circle at the top left and a red square on the right". A model that pools its inputs into a bag of
concepts ({red, blue, circle, square, ...}) cannot tell them apart, however well it reads single words; the
"absent" control edits a word instead ("a green circle ..."), which a bag of concepts does see.

    colour swap    objects i, j exchange colours        (shapes and cells stay)
    shape swap     objects i, j exchange shapes         (colours and cells stay)
    position swap  objects i, j exchange cells          (the pair set stays; only where changes)
    absent         object i takes a colour no object of the scene has

For each true (image I, caption T) and its edit (I', T'), with any score s of row-aligned pairs:
    text accuracy    P[ s(I, T) > s(I, T') ]       which caption fits the image?   chance 0.5
    image accuracy   P[ s(I, T) > s(I', T) ]       which image fits the caption?   chance 0.5
A tie counts as wrong (as in Winoground): a scorer that cannot tell the two apart scores 0, not 0.5.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .checks import check_int, check_one_of
from .data import Scene, ShapesWorld, to_tensor
from .data.language import listing, noun_phrase
from .metrics import accuracy_with_interval

__all__ = ["SWAPS", "TEMPLATES", "SwapSet", "swap", "paired_captions", "swap_set", "swap_accuracy"]

SWAPS = ("color", "shape", "position", "absent")
TEMPLATES = ("{}.", "there is {}.", "the image shows {}.")   # three templates of ShapesWorld's caption grammar
_DETAILS = ("full", "sized", "placed", "plain")


def _check_scene_world(scene, world) -> None:
    if not isinstance(world, ShapesWorld):
        raise TypeError(f"world must be a ShapesWorld, got {type(world).__name__}")
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a Scene, got {type(scene).__name__}")
    world.check_scene(scene)


def swap(scene: Scene, attribute: str, world: ShapesWorld, rng: random.Random) -> Scene | None:
    """The scene with ``attribute`` exchanged between two of its objects that differ in colour and in shape (so
    each swap changes the caption), or, for "absent", one object recoloured with a colour absent from the scene.
    The objects keep their order. None when the scene allows no such edit without a held-out or repeated pair."""
    _check_scene_world(scene, world)
    check_one_of(attribute, "attribute", SWAPS)
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    objs = scene.objects
    if attribute == "absent":
        options = [(i, c) for i, o in enumerate(objs) for c in world.colors
                   if c not in {p.color for p in objs} and (c, o.shape) not in world.holdout]
        if not options:
            return None
        i, color = rng.choice(options)
        return Scene(objs[:i] + (replace(objs[i], color=color),) + objs[i + 1:])
    candidates = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
                  if objs[i].color != objs[j].color and objs[i].shape != objs[j].shape]
    rng.shuffle(candidates)
    for i, j in candidates:
        a, b = objs[i], objs[j]
        if attribute == "color":
            a, b = replace(a, color=b.color), replace(b, color=a.color)
        elif attribute == "shape":
            a, b = replace(a, shape=b.shape), replace(b, shape=a.shape)
        else:
            a, b = replace(a, position=b.position), replace(b, position=a.position)
        edited = list(objs)
        edited[i], edited[j] = a, b
        if not Scene(tuple(edited)).pairs() & world.holdout:
            return Scene(tuple(edited))
    return None


def paired_captions(scene: Scene, edited: Scene, rng: random.Random, detail: str = "placed") -> tuple[str, str]:
    """(caption of ``scene``, caption of ``edited``): one template and one object order for both, object k of one
    described where object k of the other is, so the two differ only by the edit."""
    for name, s in (("scene", scene), ("edited", edited)):
        if not isinstance(s, Scene):
            raise TypeError(f"{name} must be a Scene, got {type(s).__name__}")
    if len(scene) != len(edited):
        raise ValueError(f"scene and edited must hold as many objects, got {len(scene)} and {len(edited)}")
    check_one_of(detail, "detail", _DETAILS)
    order = list(range(len(scene)))
    rng.shuffle(order)
    template = TEMPLATES[rng.randrange(len(TEMPLATES))]
    return tuple(template.format(listing([noun_phrase(s.objects[k], detail) for k in order]))
                 for s in (scene, edited))


@dataclass(frozen=True)
class SwapSet:
    """For each attribute in SWAPS: ``n`` true scenes, their edits and the paired captions (lists, aligned)."""

    world: ShapesWorld
    scenes: dict[str, list[Scene]]
    edited: dict[str, list[Scene]]
    true: dict[str, list[str]]
    false: dict[str, list[str]]


def swap_set(world: ShapesWorld, n: int, split: str = "test", seed: int = 0, detail: str = "placed") -> SwapSet:
    """``n`` distinct two-object scenes of ``split`` per attribute (each with an edit of that attribute), their
    edits and paired captions. The same arguments always give the same set."""
    if not isinstance(world, ShapesWorld):
        raise TypeError(f"world must be a ShapesWorld, got {type(world).__name__}")
    check_int(n, "n", maximum=100_000)
    check_int(seed, "seed", minimum=0, maximum=None)
    check_one_of(detail, "detail", _DETAILS)
    if world.max_objects < 2:
        raise ValueError(f"swaps need scenes of two objects; this world has max_objects={world.max_objects}")
    rng = random.Random(seed)
    out = {key: {a: [] for a in SWAPS} for key in ("scenes", "edited", "true", "false")}
    draws, seen = 8 * n, set()
    while True:
        for scene in world.scenes(draws, split):   # a prefix of the next, larger draw: seen scenes are skipped
            if len(scene) != 2 or scene.key() in seen:
                continue
            seen.add(scene.key())
            for attribute in SWAPS:
                if len(out["scenes"][attribute]) == n:
                    continue
                edited = swap(scene, attribute, world, rng)
                if edited is not None:
                    true, false = paired_captions(scene, edited, rng, detail)
                    for key, value in zip(out, (scene, edited, true, false)):
                        out[key][attribute].append(value)
            if all(len(v) == n for v in out["scenes"].values()):
                return SwapSet(world, **out)
        if draws >= 64 * n:
            short = {a: len(v) for a, v in out["scenes"].items()}
            raise ValueError(f"split {split!r} of {world} gave too few two-object scenes for n={n}: {short}")
        draws *= 2


def _scores(score, images: torch.Tensor, texts: list[str], where: str) -> torch.Tensor:
    s = score(images, texts)
    if not isinstance(s, torch.Tensor) or s.shape != (len(texts),):
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"score must return a tensor of shape ({len(texts)},) for {where}, got {got}")
    if not torch.isfinite(s).all():
        raise ValueError(f"score returned NaN or inf for {where}")
    return s.detach().float().cpu()


@torch.no_grad()
def swap_accuracy(score: Callable[[torch.Tensor, list[str]], torch.Tensor], swaps: SwapSet) -> dict[str, dict]:
    """Text and image accuracy (with Wilson 95% intervals) per attribute; ``score(images float (N, 3, H, W) in
    [0, 1], texts) -> (N,)`` scores row-aligned (image, text) pairs, higher meaning a better match."""
    if not isinstance(swaps, SwapSet):
        raise TypeError(f"swaps must be a SwapSet (from swap_set), got {type(swaps).__name__}")
    if not callable(score):
        raise TypeError(f"score must be a function (images, texts) -> scores, got {type(score).__name__}")
    out = {}
    for attribute in SWAPS:
        image = to_tensor(swaps.world.render_batch(swaps.scenes[attribute]))       # (N, 3, H, W)
        edited = to_tensor(swaps.world.render_batch(swaps.edited[attribute]))      # (N, 3, H, W)
        true, false = swaps.true[attribute], swaps.false[attribute]
        s_true = _scores(score, image, true, f"{attribute}: (I, T)")
        text, text_ci = accuracy_with_interval(s_true > _scores(score, image, false, f"{attribute}: (I, T')"))
        img, img_ci = accuracy_with_interval(s_true > _scores(score, edited, true, f"{attribute}: (I', T)"))
        out[attribute] = {"text": text, "text_ci": text_ci, "image": img, "image_ci": img_ci, "n": len(true)}
    return out
