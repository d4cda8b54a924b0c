"""Rendering ShapesWorld scenes to anti-aliased RGB images (chapter 00).

Objects sit in distinct cells of a 3x3 grid and never overlap, so an image is the background plus, for each
object, its coverage mask times (colour - background):

    image = background + sum_k alpha_k * (colour_k - background)

Every (shape, size, cell) coverage mask is computed once per image size by supersampling, so rendering a batch is
one gather and one einsum.
"""

from __future__ import annotations

from functools import lru_cache
from numbers import Integral

import numpy as np
import torch

GRID = 3
SUPERSAMPLE = 4
# Half-extent of an object, as a fraction of the cell size.
HALF_EXTENT = {"small": 0.28, "large": 0.42}
SIZES: tuple[str, ...] = tuple(HALF_EXTENT)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 100, 240),
    "yellow": (245, 215, 40),
    "purple": (160, 60, 210),
    "orange": (250, 135, 20),
}
BACKGROUND = (24, 24, 32)
# The course draws 8..64 px images; 256 covers the 224 px of pretrained vision models. The tables of one size take
# ~50 MB and ~2 s to build at 256 px, ~200 MB and ~40 s at 512 px, and grow as image_size**2.
MAX_IMAGE_SIZE = 256
# Any array a call of vitlib.data would allocate: far above what a chapter needs (20000 32x32 scenes: 61 MB),
# well below a laptop's memory. Ask for more and the call says so at once instead of swapping for minutes.
MAX_BYTES = 2 * 2**30


def check_image_size(image_size) -> int:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 8 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int in 8..{MAX_IMAGE_SIZE} (MAX_IMAGE_SIZE), got {image_size!r}")
    return image_size


def check_bytes(nbytes: int, what: str) -> None:
    """Refuse, before allocating, a request that needs more than MAX_BYTES."""
    if nbytes > MAX_BYTES:
        raise ValueError(f"{what} needs {nbytes / 2**30:.1f} GiB, over the limit of {MAX_BYTES / 2**30:.0f} GiB "
                         "(vitlib.data.render.MAX_BYTES); ask for fewer scenes at a time")


def check_cell(cell) -> tuple[int, int]:
    """A grid cell (row, col) with values in 0..GRID-1, as a tuple; anything else raises."""
    if not (isinstance(cell, (tuple, list)) and len(cell) == 2
            and all(isinstance(p, Integral) and not isinstance(p, bool) and 0 <= p < GRID for p in cell)):
        raise ValueError(f"position must be a (row, col) cell with values in 0..{GRID - 1}, got {cell!r}")
    return tuple(cell)


def check_rgb(color, what: str) -> tuple[int, int, int]:
    if not (isinstance(color, (tuple, list)) and len(color) == 3
            and all(isinstance(v, Integral) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
        raise ValueError(f"{what} must be an (r, g, b) triple of ints in 0..255, got {color!r}")
    return tuple(color)


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Is the point (u, v), in units of the object's half-extent (v pointing down), inside the shape?"""
    if shape == "circle":
        return u**2 + v**2 <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "triangle":  # apex up at v=-1, base at v=0.8
        return (v <= 0.8) & (np.abs(u) <= 0.95 * (v + 1.0) / 1.8)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":  # a plus sign with arms a third as thick as they are long
        return ((np.abs(u) <= 0.34) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 1.0))
    raise ValueError(f"no renderer for shape {shape!r}")


def cell_center(cell: tuple[int, int], image_size: int) -> tuple[float, float]:
    """Pixel coordinates (x, y) of the centre of grid cell (row, col)."""
    c = check_image_size(image_size) / GRID
    row, col = check_cell(cell)
    return (col + 0.5) * c, (row + 0.5) * c


def check_shapes(shapes) -> tuple[str, ...]:
    if isinstance(shapes, str) or not isinstance(shapes, (tuple, list)) or not shapes:
        raise ValueError(f"shapes must be a non-empty tuple of shape names, got {shapes!r}")
    for shape in shapes:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; allowed: {', '.join(SHAPES)}")
    return tuple(shapes)


def coverage_masks(shapes: tuple[str, ...], image_size: int) -> np.ndarray:
    """Coverage in [0, 1] of every pixel by every (shape, size, cell): (n_shapes, 2, GRID*GRID, H, W) float32."""
    return _coverage_masks(check_shapes(shapes), check_image_size(image_size))


@lru_cache(maxsize=16)
def _coverage_masks(shapes: tuple[str, ...], image_size: int) -> np.ndarray:
    s = SUPERSAMPLE
    sub = (np.arange(image_size * s) + 0.5) / s  # sub-pixel sample coordinates, (H*s,)
    y, x = np.meshgrid(sub, sub, indexing="ij")  # (H*s, W*s) each
    masks = np.zeros((len(shapes), len(HALF_EXTENT), GRID * GRID, image_size, image_size), np.float32)
    for i, shape in enumerate(shapes):
        for j, frac in enumerate(HALF_EXTENT.values()):
            r = frac * image_size / GRID
            for cell in range(GRID * GRID):
                cx, cy = cell_center(divmod(cell, GRID), image_size)
                hit = _inside(shape, (x - cx) / r, (y - cy) / r).astype(np.float32)
                masks[i, j, cell] = hit.reshape(image_size, s, image_size, s).mean(axis=(1, 3))  # (H, W)
    masks.setflags(write=False)
    return masks


def sprites(shapes: tuple[str, ...], image_size: int, colors: tuple[tuple[int, int, int], ...],
            background: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    """Every (shape, size, cell, colour) drawn as int16 offsets from the background over a box of its cell.

    Returns (sprites (n_shapes * 2 * GRID*GRID * n_colors, B, B, 3) int16, box size B); the box of cell (row, col)
    starts at ``box_origin``. Rounding each object alone is exact because objects never share a pixel.
    """
    if isinstance(colors, str) or not isinstance(colors, (tuple, list)) or not colors:
        raise ValueError(f"colors must be a non-empty tuple of (r, g, b) triples, got {colors!r}")
    colors = tuple(check_rgb(c, "each colour") for c in colors)
    return _sprites(check_shapes(shapes), check_image_size(image_size), colors, check_rgb(background, "background"))


@lru_cache(maxsize=16)
def _sprites(shapes, image_size, colors, background) -> tuple[np.ndarray, int]:
    masks = _coverage_masks(shapes, image_size)  # (S, 2, G*G, H, W)
    B = box_size(image_size)
    delta = np.array(colors, np.float32) - np.array(background, np.float32)  # (C, 3)
    out = np.zeros(masks.shape[:3] + (len(colors), B, B, 3), np.int16)
    for cell in range(GRID * GRID):
        y0, x0 = box_origin(divmod(cell, GRID), image_size)
        box = masks[:, :, cell, y0:y0 + B, x0:x0 + B]  # (S, 2, B, B)
        outside = masks[:, :, cell].sum() - box.sum()
        if outside > 1e-6:
            raise RuntimeError(f"an object in cell {cell} leaks outside its box at image_size={image_size}")
        out[:, :, cell] = np.rint(box[:, :, None, :, :, None] * delta[:, None, None, :])  # (S, 2, C, B, B, 3)
    out.setflags(write=False)
    return out.reshape(-1, B, B, 3), B


def box_size(image_size: int) -> int:
    """Side B of the square box that holds every object drawn in one grid cell."""
    return int(np.ceil(check_image_size(image_size) / GRID)) + 1


def box_origin(cell: tuple[int, int], image_size: int) -> tuple[int, int]:
    """Top-left pixel (y0, x0) of the box that holds every object drawn in grid cell (row, col)."""
    B = box_size(image_size)
    row, col = check_cell(cell)
    c = image_size / GRID
    return min(int(row * c), image_size - B), min(int(col * c), image_size - B)


def render_sprites(sprite_index: np.ndarray, cell_index: np.ndarray, image_size: int, sprite_table: np.ndarray,
                   background) -> np.ndarray:
    """Composite objects: image = background + sum of their sprites, one vectorised add per grid cell.

    sprite_index, cell_index: (N, K) int, -1 where a scene has fewer than K objects. Returns (N, H, W, 3) uint8.
    """
    B = box_size(image_size)
    if not (isinstance(sprite_table, np.ndarray) and sprite_table.ndim == 4 and sprite_table.shape[1:] == (B, B, 3)):
        got = sprite_table.shape if isinstance(sprite_table, np.ndarray) else type(sprite_table).__name__
        raise ValueError(f"sprite_table must be an array (M, {B}, {B}, 3) for image_size={image_size}, got {got}")
    for name, index in (("sprite_index", sprite_index), ("cell_index", cell_index)):
        if not (isinstance(index, np.ndarray) and index.ndim == 2 and np.issubdtype(index.dtype, np.integer)):
            got = f"{index.dtype} {index.shape}" if isinstance(index, np.ndarray) else type(index).__name__
            raise ValueError(f"{name} must be an int array (N, K), got {got}")
    if sprite_index.shape != cell_index.shape:
        raise ValueError(f"sprite_index and cell_index differ in shape: {sprite_index.shape} vs {cell_index.shape}")
    used = cell_index >= 0
    if ((cell_index < -1) | (cell_index >= GRID * GRID)).any() or \
            ((sprite_index[used] < 0) | (sprite_index[used] >= len(sprite_table))).any():
        raise ValueError(f"cell_index must lie in -1..{GRID * GRID - 1} and sprite_index in 0..{len(sprite_table) - 1} "
                         "where a cell is given")
    cells = np.sort(cell_index, axis=1)  # (N, K); a repeated cell would be added only once by the fancy-indexed +=
    if ((cells[:, 1:] == cells[:, :-1]) & (cells[:, 1:] >= 0)).any():
        raise ValueError("two objects of one scene share a cell")
    background, N = check_rgb(background, "background"), sprite_index.shape[0]
    check_bytes(N * image_size * image_size * 3 * 3, f"rendering {N} scenes of {image_size}x{image_size} "
                "(int16 work array and uint8 images)")
    image = np.empty((N, image_size, image_size, 3), np.int16)
    image[:] = background
    for cell in range(GRID * GRID):
        n, k = np.nonzero(cell_index == cell)  # at most one object per (scene, cell)
        if len(n):
            y0, x0 = box_origin(divmod(cell, GRID), image_size)
            image[n, y0:y0 + B, x0:x0 + B] += sprite_table[sprite_index[n, k]]
    return image.astype(np.uint8)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, 3) or (H, W, 3) -> float tensor (N, 3, H, W) or (3, H, W) in [0, 1]."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"expected a uint8 numpy array of images, got {got}")
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (H, W, 3) or (N, H, W, 3), got {images.shape}")
    check_bytes(images.size * 4, f"to_tensor of images {images.shape} (float32)")
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.movedim(-1, -3).contiguous()  # (..., H, W, 3) -> (..., 3, H, W)
