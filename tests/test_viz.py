"""vitlib.viz.show_images: the grid it lays out, titles wrapped with their own line breaks kept, bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vitlib.viz import show_images  # noqa: E402


def test_grid_and_titles():
    images = [np.zeros((8, 8, 3), np.uint8), torch.rand(3, 8, 8), torch.rand(8, 8, 3)]
    fig = show_images(images, ["one", "a first line\nsecond", "a long title that needs wrapping"], ncols=2,
                      title_width=12)
    axes = fig.axes
    assert len(axes) == 4 and not axes[3].images, "2 x 2 grid, the fourth cell empty"
    assert axes[1].get_title() == "a first line\nsecond"
    assert axes[2].get_title() == "a long title\nthat needs\nwrapping"
    assert axes[0].images[0].get_array().shape == (8, 8, 3)
    plt.close(fig)


def test_bad_input():
    with pytest.raises(ValueError, match="at least one image"):
        show_images([])
    with pytest.raises(ValueError, match="got 2 images but 1 titles"):
        show_images([np.zeros((4, 4, 3), np.uint8)] * 2, ["only one"])
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\) or \(3, H, W\), got \(4, 4\)"):
        show_images([np.zeros((4, 4))])
