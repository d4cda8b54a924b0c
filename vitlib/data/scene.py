"""Objects and scenes of ShapesWorld, and the checks every consumer of a scene shares (chapter 00).

An ``Obj`` is a (shape, colour, size) in one cell of the 3x3 grid; a ``Scene`` holds 1..9 of them in distinct cells.
Both check that at construction, so a scene that exists is drawable; which names are allowed depends on the world,
so ``check_scene`` checks those.
"""

from __future__ import annotations

from dataclasses import dataclass

from .render import COLORS, GRID, SHAPES, SIZES, check_cell


def choice_error(name: str, value, allowed) -> ValueError:
    return ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class Obj:
    """One object: its shape, colour, size and grid cell ``position = (row, col)``."""

    shape: str
    color: str
    size: str
    position: tuple[int, int]

    def __post_init__(self):
        for field in ("shape", "color", "size"):
            if not isinstance(getattr(self, field), str):
                raise TypeError(f"Obj {field} must be a str, got {type(getattr(self, field)).__name__}")
        object.__setattr__(self, "position", check_cell(self.position))


@dataclass(frozen=True)
class Scene:
    """A scene: a tuple of 1..GRID*GRID objects in distinct cells."""

    objects: tuple[Obj, ...]

    def __post_init__(self):
        if not isinstance(self.objects, (tuple, list)):
            raise TypeError(f"Scene objects must be a tuple of Obj, got {type(self.objects).__name__}")
        bad = [type(o).__name__ for o in self.objects if not isinstance(o, Obj)]
        if bad:
            raise TypeError(f"Scene objects must be a tuple of Obj, got an element of type {bad[0]}")
        if not 1 <= len(self.objects) <= GRID * GRID:
            raise ValueError(f"a scene holds 1..{GRID * GRID} objects (the world never draws an empty one), "
                             f"got {len(self.objects)}")
        cells = [o.position for o in self.objects]
        if len(set(cells)) != len(cells):
            raise ValueError(f"two objects share a cell: positions {cells}")
        object.__setattr__(self, "objects", tuple(self.objects))

    def __len__(self) -> int:
        return len(self.objects)

    def pairs(self) -> set[tuple[str, str]]:
        """The set of (colour, shape) pairs in the scene."""
        return {(o.color, o.shape) for o in self.objects}

    def key(self) -> bytes:
        """A canonical byte string: equal scenes (objects in any order) have equal keys."""
        parts = sorted(f"{o.position[0]}{o.position[1]}{o.color}:{o.shape}:{o.size}" for o in self.objects)
        return "|".join(parts).encode()


def check_scene(scene, colors=COLORS, shapes=SHAPES, sizes=SIZES) -> None:
    """Raise TypeError unless ``scene`` is a Scene, ValueError if it names a colour, shape or size not allowed."""
    if not isinstance(scene, Scene):
        raise TypeError(f"expected a Scene, got {type(scene).__name__}")
    for o in scene.objects:
        if o.color not in colors:
            raise choice_error("color in scene", o.color, colors)
        if o.shape not in shapes:
            raise choice_error("shape in scene", o.shape, shapes)
        if o.size not in sizes:
            raise choice_error("size", o.size, sizes)


def check_pair(pair, colors=COLORS, shapes=SHAPES, where: str = "pair") -> tuple[str, str]:
    """A (colour, shape) pair of allowed names, as a tuple; anything else raises."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(name, str) for name in pair)):
        raise ValueError(f"expected a (color, shape) pair of names in {where}, got {pair!r}")
    color, shape = pair
    if color not in colors:
        raise choice_error(f"color in {where}", color, colors)
    if shape not in shapes:
        raise choice_error(f"shape in {where}", shape, shapes)
    return color, shape
