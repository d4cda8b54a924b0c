"""Pictures of attention: weight matrices with token labels, masks, one query's weights, and attention over image
patches (chapters 02 and 06).

Weights come in as arrays or tensors: one map is (T, S) (queries x keys); a layer's maps are (H, T, S); a
sentence's maps are {layer name: (H, T, T)}.
"""

from __future__ import annotations

import numpy as np
import torch

from vitlib.checks import check_int
from vitlib.viz.images import to_image


def _as_array(x, name: str, shape: str) -> np.ndarray:
    """An array or tensor -> a float numpy array with as many dimensions as ``shape`` ("(T, S)") names."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=float)
    if x.ndim != len(shape.strip("()").rstrip(",").split(",")):
        raise ValueError(f"expected {name} of shape {shape}, got shape {x.shape}")
    return x


def _check_labels(labels, size: int, what: str) -> None:
    if labels is not None and len(labels) != size:
        raise ValueError(f"expected {size} {what} labels, one per {what}, got {len(labels)}")


def plot_attention(weights, query_labels=None, key_labels=None, ax=None, title=None, cmap="viridis",
                   vmax=None, annotate=False, highlight_row=None):
    """Heat map of a (T, S) weight matrix: row i = how query i spreads its attention over the keys."""
    import matplotlib.pyplot as plt

    w = _as_array(weights, "weights", "(T, S)")
    _check_labels(query_labels, w.shape[0], "query")
    _check_labels(key_labels, w.shape[1], "key")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.3 * w.shape[1] + 1.5, 0.3 * w.shape[0] + 1))
    ax.imshow(w, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(np.nanmax(w), 1e-9), aspect="auto",
              interpolation="nearest")
    ax.set_xticks(range(w.shape[1]), key_labels if key_labels is not None else range(w.shape[1]),
                  rotation=90, fontsize=7)
    ax.set_yticks(range(w.shape[0]), query_labels if query_labels is not None else range(w.shape[0]), fontsize=7)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if annotate:
        for (i, j), value in np.ndenumerate(w):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 * np.nanmax(w) else "white")
    if highlight_row is not None:
        ax.add_patch(plt.Rectangle((-0.5, highlight_row - 0.5), w.shape[1], 1, fill=False, edgecolor="red", lw=1.5))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


MASK_COLOURS = ("#eeeeee", "#3a6ea5")  # hidden (False), attend (True)


def plot_mask(mask, query_labels=None, key_labels=None, ax=None, title=None):
    """A boolean (T, S) mask drawn as attend (True: blue) / hidden (False: light grey)."""
    from matplotlib.colors import ListedColormap

    m = _as_array(mask, "mask", "(T, S)")
    ax = plot_attention(m, query_labels, key_labels, ax=ax, title=title, cmap=ListedColormap(MASK_COLOURS), vmax=1.0)
    ax.set_xticks(np.arange(m.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(m.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=0.8)
    ax.tick_params(which="minor", length=0)
    return ax


def plot_query(weights_row, key_labels, ax=None, title=None, highlight=None):
    """Bar chart of one query's weights over the keys; ``highlight``: key indices drawn in red."""
    import matplotlib.pyplot as plt

    row = _as_array(weights_row, "weights_row", "(S,)")
    _check_labels(key_labels, row.shape[0], "key")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.3 * len(row) + 1.5, 2.5))
    red = set() if highlight is None else set(highlight)
    ax.bar(range(len(row)), row, color=["tab:red" if j in red else "tab:blue" for j in range(len(row))])
    ax.set_xticks(range(len(row)), key_labels, rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("weight")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def check_maps(maps: dict, tokens) -> dict:
    """{layer name: (H, T, T) array or tensor} for T = len(tokens) -> the same as float numpy arrays."""
    if not maps:
        raise ValueError("expected maps with at least one layer, {name: weights of shape (heads, T, T)}, got none")
    n = len(tokens)
    out = {}
    for name, w in maps.items():
        w = _as_array(w, f"maps[{name!r}]", "(heads, T, T)")
        if w.shape[1:] != (n, n):
            raise ValueError(f"expected maps[{name!r}] of shape (heads, {n}, {n}) for {n} tokens, got {w.shape}")
        out[name] = w
    return out


def pick(maps: dict, tokens, layer=None, head=0, query=None) -> tuple:
    """Check a choice of (layer, head, query) in checked ``maps``; the defaults: the first layer, the last token."""
    layer = next(iter(maps)) if layer is None else layer
    if layer not in maps:
        raise ValueError(f"expected a layer in {list(maps)}, got {layer!r}")
    heads = maps[layer].shape[0]
    if not 0 <= head < heads:
        raise ValueError(f"expected a head in [0, {heads}) for layer {layer!r}, got {head}")
    query = len(tokens) - 1 if query is None else query
    if not 0 <= query < len(tokens):
        raise ValueError(f"expected a query token in [0, {len(tokens)}), got {query}")
    return layer, int(head), int(query)


def show_attention(maps: dict, tokens, layer=None, head=0, query=None, highlight=None):
    """One layer/head of a sentence's self-attention: the full map (the query's row framed) and, under it, that
    query's weights as bars, key by key below the map's columns; returns the figure.
    ``maps``: {layer name: (H, T, T)}; ``query``: token index (default: the last)."""
    import matplotlib.pyplot as plt

    maps = check_maps(maps, tokens)
    layer, head, query = pick(maps, tokens, layer, head, query)
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    w = maps[layer][head]  # (T, T)
    # At most 7.5 inches wide, so that a book page shows it unshrunk, with 0.15 inch per token and row: room
    # for 8-point labels. The keys are labelled once, under the bars, which share the map's columns.
    n = len(tokens)
    width, map_height = min(7.5, max(4.0, 0.18 * n + 1.5)), max(2.0, 0.15 * n)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(width, map_height + 2.6),
                                      gridspec_kw={"height_ratios": [map_height, 1.4]})
    plot_attention(w, labels, labels, ax=top, title=f"{layer}, head {head}", highlight_row=query)
    plot_query(w[query], labels, ax=bottom, highlight=highlight,
               title=f"query {query}:{tokens[query]!r} attends to ...")
    top.set_xlabel("")
    top.tick_params(labelbottom=False)
    bottom.set_xlabel("key")
    bottom.set_xlim(-0.5, n - 0.5)
    for ax in (top, bottom):
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def plot_patch_attention(image, weights, grid: int, ax=None, title=None):
    """An image with one query's weights over its grid x grid patches laid on top (brighter = more weight).
    ``image``: any form `vitlib.viz.images.to_image` takes; ``weights``: (grid * grid,), patches row by row."""
    import matplotlib.pyplot as plt

    check_int(grid, "grid")
    w = _as_array(weights, "weights", "(patches,)")
    if w.shape[0] != grid * grid:
        raise ValueError(f"expected {grid * grid} patch weights for a {grid}x{grid} grid, got {w.shape[0]}")
    image = to_image(image)  # (H, W, 3)
    if ax is None:
        _, ax = plt.subplots(figsize=(2.5, 2.5))
    h, wd = image.shape[:2]
    ax.imshow(image, interpolation="nearest")
    ax.imshow(w.reshape(grid, grid), cmap="magma", alpha=0.6, extent=(-0.5, wd - 0.5, h - 0.5, -0.5),
              interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax
