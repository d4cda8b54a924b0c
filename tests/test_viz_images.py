"""vitlib.viz.images: to_image turns each of the course's image forms into the same picture; show_images lays out
its grid, titles wrapped with their own line breaks kept. (Bad input: tests/test_viz_bad_input.py.)"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vitlib.viz import show_images, to_image  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_to_image_forms_agree():
    g = torch.Generator().manual_seed(0)
    hwc = torch.randint(0, 256, (5, 7, 3), generator=g, dtype=torch.uint8)     # (H, W, 3) uint8
    as_float = hwc.float() / 255                                               # (H, W, 3) in [0, 1]
    forms = {
        "uint8 array (H, W, 3)": hwc.numpy(),
        "uint8 tensor (H, W, 3)": hwc,
        "uint8 tensor (3, H, W)": hwc.permute(2, 0, 1),
        "float tensor (H, W, 3)": as_float,
        "float tensor (3, H, W)": as_float.permute(2, 0, 1),
        "float64 array (3, H, W)": as_float.permute(2, 0, 1).double().numpy(),
        "bfloat16 tensor (3, H, W)": as_float.permute(2, 0, 1).bfloat16(),
        "float tensor needing grad": as_float.clone().requires_grad_(),
    }
    for form, x in forms.items():
        image = to_image(x)
        assert image.shape == (5, 7, 3), form
        if image.dtype == np.uint8:
            np.testing.assert_array_equal(image, hwc.numpy(), err_msg=form)
        else:
            assert image.dtype == np.float32, form
            np.testing.assert_allclose(image * 255, hwc.numpy(), atol=1.0, err_msg=form)  # bfloat16: ~0.4% steps


def test_to_image_clips_rounding_only():
    x = torch.full((3, 2, 2), 1.0) + 1e-6                   # float arithmetic can land just above 1
    assert to_image(x).max() == 1.0
    assert to_image(torch.full((2, 2, 3), -1e-6)).min() == 0.0


def test_to_image_channels_last_wins_when_both_are_3():
    x = torch.rand(3, 4, 3)                                 # ambiguous: read as (H, W, 3)
    np.testing.assert_array_equal(to_image(x), x.numpy())


def test_grid_and_titles():
    images = [np.zeros((8, 8, 3), np.uint8), torch.rand(3, 8, 8), torch.rand(8, 8, 3)]
    fig = show_images(images, ["one", "a first line\nsecond", "a long title that needs wrapping"], ncols=2,
                      title_width=12)
    axes = fig.axes
    assert len(axes) == 4 and not axes[3].images, "2 x 2 grid, the fourth cell empty"
    assert axes[1].get_title() == "a first line\nsecond"
    assert axes[2].get_title() == "a long title\nthat needs\nwrapping"
    assert axes[0].images[0].get_array().shape == (8, 8, 3)


def test_grid_draws_the_pixels_given():
    batch = torch.rand(3, 3, 6, 6)                          # (N, 3, H, W), as models take them
    fig = show_images(batch, ncols=3)
    for ax, x in zip(fig.axes, batch):
        np.testing.assert_allclose(ax.images[0].get_array(), x.permute(1, 2, 0).numpy())
    fig = show_images(np.zeros((2, 4, 4, 3), np.uint8) + 200)    # (N, H, W, 3) uint8, as render_batch makes them
    assert all((ax.images[0].get_array() == 200).all() for ax in fig.axes)
    assert fig.axes[0].get_title() == ""


def test_bad_input():
    with pytest.raises(ValueError, match="at least one image"):
        show_images([])
    with pytest.raises(ValueError, match="got 2 images but 1 titles"):
        show_images([np.zeros((4, 4, 3), np.uint8)] * 2, ["only one"])
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\) or \(3, H, W\), got \(4, 4\)"):
        show_images([np.zeros((4, 4))])
