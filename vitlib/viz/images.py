"""Images as a reader sees them: one converter from the course's image formats to what matplotlib draws, and
image grids with captions (chapters 00, 04, 05, 06).

The course keeps images in two forms: uint8 arrays (H, W, 3) in 0..255, as `ShapesWorld.render` makes them, and
float tensors (3, H, W) in [0, 1], as models take them (`vitlib.data.to_tensor`). `to_image` turns either into an
array `imshow` draws, and refuses anything else with a message saying what it expected.
"""

from __future__ import annotations

import textwrap

import numpy as np
import torch

from vitlib.checks import check_int

ROUNDING = 1e-3  # float images may leave [0, 1] by this much (float16 steps are ~1e-3 near 1); they are clipped


def to_image(x, name: str = "image") -> np.ndarray:
    """One image -> a numpy array (H, W, 3) for `imshow`: uint8 in 0..255 stays uint8, float becomes float32 in
    [0, 1].

    ``x``: a numpy array or torch tensor, channels last (H, W, 3) or first (3, H, W) (a shape (3, H, 3) counts as
    channels last); uint8 in 0..255 or float in [0, 1] (NaN and values outside are refused: a normalised image must
    be un-normalised first). ``name`` starts the error messages ("images[2]: ..."): ValueError for a wrong shape or
    value, TypeError for a wrong dtype.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float().numpy() if x.is_floating_point() else x.numpy()  # bfloat16 has no numpy type
    x = np.asarray(x)
    if x.ndim != 3:
        hint = "; a batch? pass its images one by one, or the batch to show_images" if x.ndim == 4 else ""
        raise ValueError(f"{name}: expected one image of shape (H, W, 3) or (3, H, W), got {x.shape}{hint}")
    if x.size == 0:
        raise ValueError(f"{name}: expected an image of at least 1 x 1 pixels, got shape {x.shape}")
    if x.shape[-1] != 3:
        if x.shape[0] != 3:
            raise ValueError(f"{name}: expected 3 colour channels, last (H, W, 3) or first (3, H, W), "
                             f"got shape {x.shape}")
        x = x.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 values in 0..255 or float values in [0, 1], got dtype {x.dtype}")
    nan = np.isnan(x)
    if nan.any():
        raise ValueError(f"{name}: expected float values in [0, 1], got NaN in {int(nan.sum())} of {x.size} values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -ROUNDING or hi > 1 + ROUNDING:
        raise ValueError(f"{name}: expected float values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "un-normalise a normalised image first (x * std + mean); make a float one in 0..255 uint8")
    return np.clip(x, 0, 1).astype(np.float32)


def show_images(images, titles=None, ncols: int = 8, size: float = 1.6, title_width: int = 22, suptitle=None):
    """Show images in a grid, each with an optional title, wrapped at ``title_width`` characters (line breaks in a
    title are kept); returns the matplotlib figure.

    ``images``: a list of images or a batch (N, H, W, 3) / (N, 3, H, W), in any form `to_image` takes.
    """
    import matplotlib.pyplot as plt

    check_int(ncols, "ncols")
    check_int(title_width, "title_width")

    def wrap(title: str) -> list[str]:
        return [row for line in title.split("\n") for row in textwrap.wrap(line, title_width) or [""]]

    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 3:
        raise ValueError(f"expected a list or batch of images, got one image of shape {tuple(images.shape)}; "
                         "pass [image]")
    images = [to_image(im, f"images[{i}]") for i, im in enumerate(images)]
    if not images:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"expected one title per image, got {len(images)} images but {len(titles)} titles")
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
