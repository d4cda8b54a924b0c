"""Interactive figures that work in the rendered book: self-contained HTML and plain JavaScript (chapters 02, 05, 06).

The ipywidgets panels of `vitlib.viz.widgets` need a running kernel, so the book shows them inert. These figures
carry their data with them (JSON in the page, images as base64 PNG) and one plain <script> that runs on load: no
CDN, no module loader, nothing fetched. They work in Jupyter, Colab, VS Code and the book, online or offline; where
scripts do not run (an untrusted notebook in JupyterLab), the figure says so, and the chapter's static matplotlib
figure shows the same data.

- `attention_html`: one layer/head of A = softmax(Q K^T / sqrt(d_k)) (chapter 02); hover a query token to see its
  row A[i, :] as shaded tokens beside the full map (the content of `show_attention`);
- `retrieval_html`: the top-k images by score s(q, n) for a chosen query (chapter 05);
- `itm_html`: P(match | caption, image) and, word by word, the caption's cross-attention over the image patches
  (chapter 06).

Each returns a str of HTML (`display_html` shows it in a notebook). Element ids start with the figure's id: the
kind, a hash of the data and a call counter, so that two figures on one page never clash.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import math
import struct
import zlib

import numpy as np
import torch

from vitlib.checks import check_int
from vitlib.viz.attention import _as_array, check_maps, pick
from vitlib.viz.interactive_assets import COLOUR_MAPS, CSS, SCRIPT
from vitlib.viz.images import to_image

__all__ = ["attention_html", "retrieval_html", "itm_html", "display_html"]

_CALLS = itertools.count()  # deterministic: the n-th figure made in a session gets n in its id
DIGITS = 3  # scores are sent rounded to 3 decimals, attention weights as whole thousandths (half the characters)


def _json(payload) -> str:
    """JSON safe inside a <script> element: <, > and & escaped as \\u003c ... (valid JSON, no early </script>)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _figure(kind: str, payload: dict, title: str | None) -> str:
    payload = {"kind": kind, **payload, "colour_maps": COLOUR_MAPS}
    data = _json(payload)
    fid = f"vl-{kind}-{hashlib.sha1(data.encode()).hexdigest()[:10]}-{next(_CALLS)}"
    heading = f'<div class="vl-title">{html.escape(title)}</div>' if title else ""
    # tex2jax_ignore / mathjax_ignore: the book's MathJax leaves the figure's text alone
    return (f'<div class="vl-figure tex2jax_ignore mathjax_ignore" id="{fid}">{heading}<style>{CSS}</style>'
            f'<div class="vl-note" id="{fid}-nojs">This interactive figure needs JavaScript; the static figure '
            f'shows the same data.</div>\n<script type="application/json" id="{fid}-data">{data}</script>\n'
            f'<script>{SCRIPT.replace("__ID__", fid)}</script></div>')


def _finite(x: np.ndarray, name: str, low: float | None = None, high: float | None = None,
            thousandths: bool = False) -> list:
    """Refuse NaN/inf (JSON cannot carry them) and values outside [low, high]; -> nested lists, rounded to DIGITS
    decimals (``thousandths``: as ints, round(1000 x))."""
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"expected finite {name}, got NaN or inf in {int(bad.sum())} of {x.size} values")
    if x.size and ((low is not None and x.min() < low) or (high is not None and x.max() > high)):
        wanted = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"expected {name} {wanted}, got values in [{x.min():.3g}, {x.max():.3g}]")
    return np.round(x * 1000).astype(int).tolist() if thousandths else np.round(x, DIGITS).tolist()


def _strings(values, name: str, size: int | None = None) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise TypeError(f"expected {name} as a list of str, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"expected {name}[{i}] to be a str, got {type(v).__name__}")
    if not values or (size is not None and len(values) != size):
        raise ValueError(f"expected {size or 'at least 1'} {name}, got {len(values)}")
    return list(values)


def _png(image: np.ndarray) -> str:
    """An (H, W, 3) image -> a base64 PNG: 8-bit RGB, one unfiltered scanline per row, zlib-compressed."""
    x = image if image.dtype == np.uint8 else np.round(image * 255).astype(np.uint8)
    x = np.ascontiguousarray(x)
    h, w = x.shape[:2]
    rows = b"".join(b"\x00" + x[i].tobytes() for i in range(h))  # filter byte 0, then W * 3 bytes

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode("ascii")


def _images(images) -> list[np.ndarray]:
    """A list or batch of N images (uint8 (N, H, W, 3) or float (N, 3, H, W)) -> N arrays (H, W, 3)."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 3:
        raise ValueError(f"expected a list or batch of images, got one image of shape {tuple(images.shape)}; "
                         "pass [image]")
    if not isinstance(images, (list, tuple, np.ndarray, torch.Tensor)):
        raise TypeError(f"expected images as a list or batch (N, H, W, 3) / (N, 3, H, W), got {type(images).__name__}")
    out = [to_image(im, f"images[{i}]") for i, im in enumerate(images)]
    if not out:
        raise ValueError("expected at least one image, got none")
    return out


def attention_html(maps: dict, tokens, highlight=None, layer=None, head: int = 0, query=None,
                   title: str | None = None) -> str:
    """A sentence's self-attention as an interactive figure: pick a layer and a head, hover or click a query token
    and see its row as shaded tokens and framed in the map. ``maps``: {layer name: (H, T, T)}, as for
    `show_attention`; ``highlight``: key indices underlined in red; ``layer``, ``head``, ``query``: what it shows
    first (default: the first layer, head 0, the last token)."""
    tokens = _strings(tokens, "tokens")
    maps = check_maps(maps, tokens)
    layer, head, query = pick(maps, tokens, layer, head, query)
    highlight = [] if highlight is None else list(highlight)
    for j in highlight:
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < len(tokens):
            raise ValueError(f"expected highlight as key indices in [0, {len(tokens)}), got {j!r}")
    return _figure("attention", {
        "layers": [str(name) for name in maps], "tokens": tokens, "highlight": [int(j) for j in highlight],
        "maps": [_finite(w, f"maps[{name!r}]", 0.0, thousandths=True) for name, w in maps.items()],  # [L](H, T, T)
        "layer": list(maps).index(layer), "head": head, "query": query}, title)


def retrieval_html(queries, images, scores, k: int = 5, titles=None, size: int = 72,
                   title: str | None = None) -> str:
    """Text-to-image retrieval as an interactive figure: pick one of Q precomputed queries (a select, narrowed by
    typing) and see its top-``k`` images with their scores. ``images``: N images (uint8 (N, H, W, 3) or float
    (N, 3, H, W)); ``scores``: (Q, N), higher = better; ``titles``: N strings shown on hover; ``size``: pixels
    per image side on the page. Only the images some query ranks in its top k are embedded."""
    queries = _strings(queries, "queries")
    pictures = _images(images)
    check_int(k, "k", maximum=len(pictures))
    check_int(size, "size")
    s = _as_array(scores, "scores", "(Q, N)")
    if s.shape != (len(queries), len(pictures)):
        raise ValueError(f"expected scores of shape (Q, N) = ({len(queries)}, {len(pictures)}) for "
                         f"{len(queries)} queries and {len(pictures)} images, got {s.shape}")
    _finite(s, "scores")
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]  # (Q, k): image indices, best first
    titles = None if titles is None else _strings(titles, "titles", len(pictures))
    return _figure("retrieval", {
        "queries": queries, "top": top.tolist(), "scores": _finite(np.take_along_axis(s, top, 1), "scores"),
        "images": {int(n): _png(pictures[n]) for n in np.unique(top)}, "titles": titles, "k": k,
        "n": len(pictures), "size": size}, title)


def itm_html(captions, images, itm_scores, cross_attention, tokens=None, grid: int | None = None, titles=None,
             size: int = 128, title: str | None = None) -> str:
    """Image-text matching as an interactive figure: pick one of C precomputed captions, see its ITM probability
    P(match | caption, image) under each of the N images and, on hover over a word, where that word's
    cross-attention looks (a grid x grid overlay, brighter = more weight, scaled per image; no word: the mean).

    ``images``: N images (a list or batch; N may be 1); ``itm_scores``: (C, N) probabilities, or (C,) when N = 1;
    ``cross_attention``: C arrays (one per caption, as a list or a tensor (C, ...)), each (N, T_c, P), or (T_c, P)
    when N = 1: word t's weights over the P = grid * grid patches, row by row (average the heads first);
    ``tokens``: C lists of T_c words (default: each caption split at spaces); ``grid``: default sqrt(P)."""
    captions = _strings(captions, "captions")
    pictures = _images(images)
    n_img, n_cap = len(pictures), len(captions)
    check_int(size, "size")
    p = _as_array(itm_scores, "itm_scores", "(C, N)") if np.ndim(itm_scores) != 1 else \
        _as_array(itm_scores, "itm_scores", "(C,)")[:, None]  # (C,) -> (C, 1)
    if p.shape != (n_cap, n_img):
        raise ValueError(f"expected itm_scores of shape (C, N) = ({n_cap}, {n_img}) for {n_cap} captions and "
                         f"{n_img} images (or (C,) for one image), got {tuple(np.shape(itm_scores))}")
    if tokens is None:
        tokens = [c.split() for c in captions]
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)) or len(tokens) != n_cap:
        raise ValueError(f"expected tokens as {n_cap} lists of words, one per caption, got {type(tokens).__name__}"
                         + (f" of {len(tokens)}" if isinstance(tokens, (list, tuple)) else ""))
    tokens = [_strings(t, f"tokens[{c}]") for c, t in enumerate(tokens)]
    if len(cross_attention) != n_cap:
        raise ValueError(f"expected cross_attention for {n_cap} captions, got {len(cross_attention)}")
    attention = []
    for c, a in enumerate(cross_attention):
        a = _as_array(a, f"cross_attention[{c}]", "(T, P)")[None] if np.ndim(a) == 2 and n_img == 1 else \
            _as_array(a, f"cross_attention[{c}]", "(N, T, P)")  # (T_c, P) -> (1, T_c, P), or (N, T_c, P) as it came
        if a.shape[:2] != (n_img, len(tokens[c])):
            raise ValueError(f"expected cross_attention[{c}] of shape (N, T_c, P) = ({n_img}, {len(tokens[c])}, P) "
                             f"for {n_img} images and {len(tokens[c])} words, got {a.shape}")
        attention.append(a)
    patches = attention[0].shape[2]
    grid = math.isqrt(patches) if grid is None else grid
    check_int(grid, "grid")
    for c, a in enumerate(attention):
        if a.shape[2] != grid * grid:
            raise ValueError(f"expected cross_attention[{c}] over P = grid * grid = {grid * grid} patches, got "
                             f"P = {a.shape[2]}; pass grid (the patches per side)")
    titles = None if titles is None else _strings(titles, "titles", n_img)
    return _figure("itm", {
        "captions": captions, "tokens": tokens, "scores": _finite(p, "itm_scores", 0.0, 1.0),
        "attention": [_finite(a, f"cross_attention[{c}]", 0.0, thousandths=True)
                      for c, a in enumerate(attention)],  # [C] (N, T_c, P)
        "images": [_png(im) for im in pictures], "grid": grid, "titles": titles, "size": size}, title)


def display_html(html_text: str) -> None:
    """Show a figure made here in a notebook (Jupyter, Colab, VS Code) and in the book that renders its output."""
    import IPython.display

    if not isinstance(html_text, str):
        raise TypeError(f"expected the str of HTML that attention_html/retrieval_html/itm_html return, got "
                        f"{type(html_text).__name__}")
    IPython.display.display(IPython.display.HTML(html_text))
