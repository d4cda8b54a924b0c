"""Rendering ShapesWorld scenes to anti-aliased RGB images (chapter 00).

Objects sit in distinct cells of a 3x3 grid and never overlap, so an image is the background plus, for each
object, its coverage mask times (colour - background):

    image = background + sum_k alpha_k * (colour_k - background)

Every (shape, size, cell) coverage mask is computed once per image size by supersampling, so rendering a batch is
one gather and one einsum.
"""

from __future__ import annotations

from functools import lru_cache

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
    c = image_size / GRID
    row, col = cell
    return (col + 0.5) * c, (row + 0.5) * c


@lru_cache(maxsize=16)
def coverage_masks(shapes: tuple[str, ...], image_size: int) -> np.ndarray:
    """Coverage in [0, 1] of every pixel by every (shape, size, cell): (n_shapes, 2, GRID*GRID, H, W) float32."""
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


@lru_cache(maxsize=16)
def sprites(shapes: tuple[str, ...], image_size: int, colors: tuple[tuple[int, int, int], ...],
            background: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    """Every (shape, size, cell, colour) drawn as int16 offsets from the background over a box of its cell.

    Returns (sprites (n_shapes * 2 * GRID*GRID * n_colors, B, B, 3) int16, box size B); the box of cell (row, col)
    starts at ``box_origin``. Rounding each object alone is exact because objects never share a pixel.
    """
    masks = coverage_masks(shapes, image_size)  # (S, 2, G*G, H, W)
    B = int(np.ceil(image_size / GRID)) + 1
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


def box_origin(cell: tuple[int, int], image_size: int) -> tuple[int, int]:
    """Top-left pixel (y0, x0) of the box that holds every object drawn in grid cell (row, col)."""
    B = int(np.ceil(image_size / GRID)) + 1
    row, col = cell
    c = image_size / GRID
    return min(int(row * c), image_size - B), min(int(col * c), image_size - B)


def render_sprites(sprite_index: np.ndarray, cell_index: np.ndarray, image_size: int, sprite_table: np.ndarray,
                   background) -> np.ndarray:
    """Composite objects: image = background + sum of their sprites, one vectorised add per grid cell.

    sprite_index, cell_index: (N, K) int, -1 where a scene has fewer than K objects. Returns (N, H, W, 3) uint8.
    """
    N, B = sprite_index.shape[0], sprite_table.shape[1]
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
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.movedim(-1, -3).contiguous()  # (..., H, W, 3) -> (..., 3, H, W)
