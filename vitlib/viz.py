"""Pictures used across the chapters: image grids with captions (chapter 00)."""

from __future__ import annotations

import numpy as np
import torch


def _as_hwc_uint8(image) -> np.ndarray:
    """A uint8 (H, W, 3) array, or a float tensor/array (3, H, W) or (H, W, 3) in [0, 1] -> uint8 (H, W, 3)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected one image of shape (H, W, 3) or (3, H, W), got {image.shape}")
    if image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return image


def show_images(images, titles=None, ncols: int = 8, size: float = 1.6, title_width: int = 22, suptitle=None):
    """Show images in a grid, each with an optional title, wrapped at ``title_width`` characters (line breaks in a
    title are kept); returns the matplotlib figure."""
    import textwrap

    import matplotlib.pyplot as plt

    def wrap(title: str) -> list[str]:
        return [row for line in title.split("\n") for row in textwrap.wrap(line, title_width) or [""]]

    images = [_as_hwc_uint8(im) for im in images]
    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    text_rows = 0 if titles is None else max(len(wrap(t)) for t in titles)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.17 * text_rows)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles is not None:
                ax.set_title("\n".join(wrap(titles[i])), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
