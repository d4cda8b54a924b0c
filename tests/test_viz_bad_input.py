"""Bad input into vitlib.viz fails at once, before a figure is opened, with an error that names what was expected
and what came.

One table per module: (a call that must fail, the exception, a pattern its message must match).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vitlib.viz import (attention_explorer, plot_attention, plot_mask, plot_patch_attention, plot_query,  # noqa: E402
                        show_attention, show_images, to_image)

TOKENS = ["a", "red", "circle", "."]
OK = np.zeros((4, 4, 3), np.uint8)                      # a good image
W45 = torch.full((4, 5), 0.2)                           # (T, S): 4 queries over 5 keys
MAPS = {"l": torch.full((2, 4, 4), 0.25)}               # {layer: (heads, T, T)}
NAN = torch.rand(3, 4, 4)
NAN[0, 0, 0] = float("nan")

IMAGES = [
    (lambda: to_image(np.zeros((4, 4))), ValueError,
     r"^image: expected one image of shape \(H, W, 3\) or \(3, H, W\), got \(4, 4\)$"),
    (lambda: to_image(torch.rand(2, 3, 4, 4)), ValueError, r"got \(2, 3, 4, 4\); a batch\? pass its images one by"),
    (lambda: to_image(np.zeros((4, 4, 1))), ValueError,
     r"expected 3 colour channels, last \(H, W, 3\) or first \(3, H, W\), got shape \(4, 4, 1\)"),
    (lambda: to_image(torch.rand(4, 4, 4)), ValueError, r"expected 3 colour channels.*got shape \(4, 4, 4\)"),
    (lambda: to_image(np.zeros((3, 0, 4))), ValueError,
     r"expected an image of at least 1 x 1 pixels, got shape \(3, 0, 4\)"),
    (lambda: to_image(np.zeros((4, 4, 3), np.int64)), TypeError,
     r"expected uint8 values in 0\.\.255 or float values in \[0, 1\], got dtype int64"),
    (lambda: to_image(torch.zeros(3, 4, 4, dtype=torch.bool)), TypeError, r"got dtype bool"),
    (lambda: to_image(NAN), ValueError, r"expected float values in \[0, 1\], got NaN in 1 of 48 values"),
    (lambda: to_image(torch.full((3, 2, 2), 255.0)), ValueError,
     r"expected float values in \[0, 1\], got values in \[255, 255\]; .*make a float one in 0\.\.255 uint8"),
    (lambda: to_image(torch.full((3, 2, 2), -0.5)), ValueError,
     r"got values in \[-0\.5, -0\.5\]; un-normalise a normalised image first \(x \* std \+ mean\)"),
    (lambda: to_image(np.full((2, 2, 3), 1.01)), ValueError, r"got values in \[1\.01, 1\.01\]"),
    (lambda: to_image(np.full((2, 2, 3), np.inf)), ValueError, r"got values in \[inf, inf\]"),
    (lambda: to_image(np.zeros((4, 4)), name="picture"), ValueError, r"^picture: expected one image"),
    (lambda: show_images([]), ValueError, r"show_images needs at least one image"),
    (lambda: show_images([OK, OK], ["only one"]), ValueError,
     r"expected one title per image, got 2 images but 1 titles"),
    (lambda: show_images(torch.rand(3, 8, 8)), ValueError,
     r"expected a list or batch of images, got one image of shape \(3, 8, 8\); pass \[image\]"),
    (lambda: show_images([OK, np.zeros((4, 4))]), ValueError, r"^images\[1\]: expected one image of shape"),
    (lambda: show_images([OK, np.full((4, 4, 3), 128.0)]), ValueError,
     r"^images\[1\]: expected float values in \[0, 1\], got values in \[128, 128\]"),
    (lambda: show_images([OK], ncols=0), ValueError, r"ncols must be a positive int, got 0"),
    (lambda: show_images([OK], title_width=2.5), ValueError, r"title_width must be a positive int, got 2\.5"),
]

ATTENTION = [
    (lambda: plot_attention(W45, TOKENS[:3]), ValueError, r"expected 4 query labels, one per query, got 3"),
    (lambda: plot_attention(W45, TOKENS, TOKENS), ValueError, r"expected 5 key labels, one per key, got 4"),
    (lambda: plot_attention(torch.rand(2, 4, 5)), ValueError,
     r"expected weights of shape \(T, S\), got shape \(2, 4, 5\)"),
    (lambda: plot_mask(torch.ones(4, dtype=torch.bool)), ValueError,
     r"expected mask of shape \(T, S\), got shape \(4,\)"),
    (lambda: plot_mask(torch.ones(4, 4, dtype=torch.bool), TOKENS[:2]), ValueError,
     r"expected 4 query labels, one per query, got 2"),
    (lambda: plot_query(W45, TOKENS), ValueError, r"expected weights_row of shape \(S,\), got shape \(4, 5\)"),
    (lambda: plot_query(W45[0], TOKENS), ValueError, r"expected 5 key labels, one per key, got 4"),
    (lambda: show_attention({}, TOKENS), ValueError, r"expected maps with at least one layer"),
    (lambda: show_attention(MAPS, TOKENS[:3]), ValueError,
     r"expected maps\['l'\] of shape \(heads, 3, 3\) for 3 tokens, got \(2, 4, 4\)"),
    (lambda: show_attention({"l": W45}, TOKENS), ValueError,
     r"expected maps\['l'\] of shape \(heads, T, T\), got shape \(4, 5\)"),
    (lambda: show_attention(MAPS, TOKENS, layer="x"), ValueError, r"expected a layer in \['l'\], got 'x'"),
    (lambda: show_attention(MAPS, TOKENS, head=2), ValueError, r"expected a head in \[0, 2\) for layer 'l', got 2"),
    (lambda: show_attention(MAPS, TOKENS, head=-1), ValueError, r"expected a head in \[0, 2\).*got -1"),
    (lambda: show_attention(MAPS, TOKENS, query=4), ValueError, r"expected a query token in \[0, 4\), got 4"),
    (lambda: plot_patch_attention(OK, torch.rand(5), grid=2), ValueError,
     r"expected 4 patch weights for a 2x2 grid, got 5"),
    (lambda: plot_patch_attention(OK, torch.rand(2, 2), grid=2), ValueError,
     r"expected weights of shape \(patches,\), got shape \(2, 2\)"),
    (lambda: plot_patch_attention(OK, torch.rand(4), grid=0), ValueError, r"grid must be a positive int, got 0"),
    (lambda: plot_patch_attention(np.zeros((8, 8)), torch.rand(4), grid=2), ValueError,
     r"^image: expected one image of shape \(H, W, 3\) or \(3, H, W\), got \(8, 8\)"),
    (lambda: plot_patch_attention(torch.full((3, 8, 8), 2.0), torch.rand(4), grid=2), ValueError,
     r"^image: expected float values in \[0, 1\], got values in \[2, 2\]"),
]

WIDGETS = [
    (lambda: attention_explorer({}, TOKENS), ValueError, r"expected maps with at least one layer"),
    (lambda: attention_explorer(MAPS, TOKENS, layer="layer 9"), ValueError,
     r"expected a layer in \['l'\], got 'layer 9'"),
    (lambda: attention_explorer(MAPS, TOKENS, head=5), ValueError, r"expected a head in \[0, 2\) for layer 'l', got 5"),
    (lambda: attention_explorer(MAPS, TOKENS, query=-1), ValueError, r"expected a query token in \[0, 4\), got -1"),
    (lambda: attention_explorer(MAPS, TOKENS + ["extra"]), ValueError,
     r"expected maps\['l'\] of shape \(heads, 5, 5\) for 5 tokens, got \(2, 4, 4\)"),
]


def _raises(call, error, message):
    try:
        with pytest.raises(error, match=message):
            call()
        opened = plt.get_fignums()
    finally:
        plt.close("all")
    assert not opened, "the check comes before any figure is opened"


@pytest.mark.parametrize("call, error, message", IMAGES)
def test_images(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", ATTENTION)
def test_attention(call, error, message):
    _raises(call, error, message)


@pytest.mark.parametrize("call, error, message", WIDGETS)
def test_widgets(call, error, message):
    _raises(call, error, message)
