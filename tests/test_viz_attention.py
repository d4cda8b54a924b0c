"""vitlib.viz.attention, drawn with matplotlib's Agg backend and checked as a reader sees it: the tick labels are
the tokens given, the colours are the weights given, a mask shows the mask, the framed row and red bars are the
query and keys asked for. (Bad input: tests/test_viz_bad_input.py.)"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from vitlib.attention import causal_mask  # noqa: E402
from vitlib.viz import plot_attention, plot_mask, plot_patch_attention, plot_query, show_attention  # noqa: E402
from vitlib.viz.attention import MASK_COLOURS  # noqa: E402

TOKENS = ["a", "red", "circle", "."]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def weights(*shape, seed=0):
    """Random attention weights: each row a distribution over the last axis."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)).softmax(dim=-1)


def labels(ticks):
    return [t.get_text() for t in ticks]


def framed_rows(ax):
    """(x, y, width, height) of every red frame drawn on ``ax``."""
    return [(*p.get_xy(), p.get_width(), p.get_height()) for p in ax.patches
            if p.get_edgecolor() == to_rgba("red") and not p.get_fill()]


def test_plot_attention_labels_and_colours():
    w = weights(4, 5)                                               # (T, S): 4 queries, 5 keys
    keys = ["k0", "k1", "k2", "k3", "k4"]
    ax = plot_attention(w, TOKENS, keys, title="random", highlight_row=2)
    assert labels(ax.get_yticklabels()) == TOKENS, "rows are the queries"
    assert labels(ax.get_xticklabels()) == keys, "columns are the keys"
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), w.numpy(), rtol=1e-6)
    assert image.get_clim() == (0, pytest.approx(w.max().item())), "colour scale from 0 to the largest weight"
    assert framed_rows(ax) == [(-0.5, 1.5, 5, 1)], "row 2 framed across all 5 keys"
    assert ax.get_title() == "random" and ax.get_xlabel() == "key" and ax.get_ylabel() == "query"


def test_plot_attention_default_labels_and_annotations():
    w = np.array([[1.0, 0.0], [0.25, 0.75]])
    ax = plot_attention(w, annotate=True)
    assert labels(ax.get_xticklabels()) == ["0", "1"] and labels(ax.get_yticklabels()) == ["0", "1"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.00", "0.25", "0.75", "1.00"]
    assert not framed_rows(ax)


def test_plot_mask_shows_the_mask():
    mask = causal_mask(4, 4)                                        # (T, T) bool: True = may attend
    ax = plot_mask(mask, TOKENS, TOKENS)
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), mask.numpy().astype(float))
    colours = image.to_rgba(image.get_array())                      # (T, T, 4): what the reader sees
    hidden, attend = (np.array(to_rgba(c)) for c in MASK_COLOURS)
    for (i, j), m in np.ndenumerate(mask.numpy()):
        np.testing.assert_allclose(colours[i, j], attend if m else hidden, atol=1e-6)
    assert labels(ax.get_xticklabels()) == TOKENS and labels(ax.get_yticklabels()) == TOKENS


def test_plot_query_bars():
    row = weights(5)
    keys = ["k0", "k1", "k2", "k3", "k4"]
    ax = plot_query(row, keys, highlight=[1, 3], title="query")
    bars = ax.patches
    np.testing.assert_allclose([b.get_height() for b in bars], row.numpy(), rtol=1e-6)
    red = [j for j, b in enumerate(bars) if b.get_facecolor() == to_rgba("tab:red")]
    assert red == [1, 3]
    assert labels(ax.get_xticklabels()) == keys and ax.get_ylim() == (0, 1)


def test_show_attention_map_and_bars_for_the_chosen_layer_head_query():
    maps = {"layer 1": weights(2, 4, 4, seed=1), "layer 2": weights(3, 4, 4, seed=2)}   # {layer: (H, T, T)}
    fig = show_attention(maps, TOKENS, "layer 2", head=2, query=1, highlight=[2])
    top, bottom = fig.axes
    w = maps["layer 2"][2].numpy()
    np.testing.assert_allclose(top.images[0].get_array(), w, rtol=1e-6)
    numbered = ["0:a", "1:red", "2:circle", "3:."]
    assert labels(top.get_yticklabels()) == numbered and labels(bottom.get_xticklabels()) == numbered
    assert top.get_title() == "layer 2, head 2"
    assert framed_rows(top) == [(-0.5, 0.5, 4, 1)], "the query's row framed"
    np.testing.assert_allclose([b.get_height() for b in bottom.patches], w[1], rtol=1e-6)
    assert [b.get_facecolor() == to_rgba("tab:red") for b in bottom.patches] == [False, False, True, False]
    assert bottom.get_title() == "query 1:'red' attends to ..."


def test_show_attention_defaults_first_layer_head_0_last_token():
    maps = {"layer 1": weights(2, 4, 4, seed=1), "layer 2": weights(3, 4, 4, seed=2)}
    top, bottom = show_attention(maps, TOKENS).axes
    np.testing.assert_allclose(top.images[0].get_array(), maps["layer 1"][0].numpy(), rtol=1e-6)
    assert framed_rows(top) == [(-0.5, 2.5, 4, 1)]
    assert bottom.get_title() == "query 3:'.' attends to ..."


@pytest.mark.parametrize("image, pixel", [(np.full((8, 8, 3), 200, np.uint8), 200),
                                          (torch.full((3, 8, 8), 0.75), 0.75)],
                         ids=["uint8 (H, W, 3)", "float (3, H, W)"])
def test_plot_patch_attention_overlays_the_grid(image, pixel):
    a = weights(4)                                                  # one query over a 2 x 2 grid of patches
    ax = plot_patch_attention(image, a, grid=2, title="query")
    picture, overlay = ax.images
    assert picture.get_array().shape == (8, 8, 3) and (picture.get_array() == pixel).all()
    np.testing.assert_allclose(overlay.get_array(), a.numpy().reshape(2, 2), rtol=1e-6)
    assert overlay.get_extent() == [-0.5, 7.5, 7.5, -0.5], "the 2 x 2 weights cover the whole 8 x 8 image"
    assert ax.get_title() == "query"
