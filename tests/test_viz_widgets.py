"""vitlib.viz.widgets: the attention explorer builds with ipywidgets, and changing a dropdown changes the map its
Output shows (each draw is caught where the panel displays it). Runs with ipywidgets 7.6+ and 8.
(Bad input: tests/test_viz_bad_input.py.)"""

import matplotlib

matplotlib.use("Agg")

import IPython.display  # noqa: E402
import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vitlib.viz import attention_explorer  # noqa: E402

TOKENS = ["a", "red", "circle", "."]
# {layer: (heads, T, T)}; the layers differ in their number of heads
MAPS = {"layer 1": torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1)).softmax(-1),
        "layer 2": torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(2)).softmax(-1)}


@pytest.fixture
def shown(monkeypatch):
    """The figures the panel displays in its Output, in order."""
    figures = []
    plt.close("all")  # another test in this worker may have left one open
    monkeypatch.setattr(IPython.display, "display", figures.append)
    yield figures
    plt.close("all")


def panel(**choices):
    box = attention_explorer(MAPS, TOKENS, highlight=[2], **choices)
    controls, out = box.children
    layer, head, query = controls.children
    return box, out, layer, head, query


def on_screen(fig):
    """(map drawn, framed query row, bar heights) of a show_attention figure."""
    top, bottom = fig.axes
    (frame,) = [p for p in top.patches if not p.get_fill()]
    return top.images[0].get_array(), int(frame.get_y() + 0.5), [b.get_height() for b in bottom.patches]


def test_builds_with_ipywidgets(shown):
    box, out, layer, head, query = panel(layer="layer 2", head=1)
    assert isinstance(box, widgets.VBox) and isinstance(out, widgets.Output)
    assert all(isinstance(w, widgets.Dropdown) for w in (layer, head, query))
    assert [layer.description, head.description, query.description] == ["layer", "head", "query"]
    assert list(layer.options) == ["layer 1", "layer 2"] and list(head.options) == [0, 1, 2]
    assert query.label == "3: ." and query.value == 3, "the last token by default"
    assert len(shown) == 1, "drawn once on creation"
    drawn, row, bars = on_screen(shown[0])
    np.testing.assert_allclose(drawn, MAPS["layer 2"][1].numpy(), rtol=1e-6)
    assert row == 3
    np.testing.assert_allclose(bars, MAPS["layer 2"][1, 3].numpy(), rtol=1e-6)
    assert plt.get_fignums() == [], "the panel closes its figures: they show once, in the Output"


def test_dropdowns_change_the_map(shown):
    _, _, layer, head, query = panel()
    query.value = 1
    drawn, row, bars = on_screen(shown[-1])
    np.testing.assert_allclose(drawn, MAPS["layer 1"][0].numpy(), rtol=1e-6)
    assert row == 1
    np.testing.assert_allclose(bars, MAPS["layer 1"][0, 1].numpy(), rtol=1e-6)
    head.value = 1
    np.testing.assert_allclose(on_screen(shown[-1])[0], MAPS["layer 1"][1].numpy(), rtol=1e-6)
    layer.value = "layer 2"
    assert list(head.options) == [0, 1, 2] and head.value == 1, "more heads offered, the head kept"
    np.testing.assert_allclose(on_screen(shown[-1])[0], MAPS["layer 2"][1].numpy(), rtol=1e-6)
    assert len(shown) == 4, "one draw per change"


def test_fewer_heads_fall_back_to_head_0(shown):
    _, _, layer, head, _ = panel(layer="layer 2", head=2)
    layer.value = "layer 1"
    assert list(head.options) == [0, 1] and head.value == 0
    assert len(shown) == 2, "refilling the head dropdown draws once, not once per step"
    np.testing.assert_allclose(on_screen(shown[-1])[0], MAPS["layer 1"][0].numpy(), rtol=1e-6)
