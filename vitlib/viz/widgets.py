"""Interactive panels, built with ipywidgets: pick what to look at from dropdowns, see the picture change
(chapter 02).

Only what ipywidgets 7.6+ and 8 both have is used (Colab ships 7): Dropdown, Output, HBox, VBox and
``observe(..., names="value")``. A panel draws with matplotlib, displays the figure inside its Output and closes
it, so the figure shows once, in the panel.
"""

from __future__ import annotations

from vitlib.viz.attention import check_maps, pick, show_attention


def attention_explorer(maps: dict, tokens, highlight=None, layer=None, head: int = 0, query=None):
    """An ipywidgets panel: pick a layer, a head and a query token and see where that query looks (the picture is
    `show_attention`'s). ``maps``: {layer name: (H, T, T)}; ``layer``, ``head``, ``query``: what it shows first
    (default: the first layer, head 0, the last token). Layers may differ in their number of heads."""
    import IPython.display
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    maps = check_maps(maps, tokens)
    first, head, query = pick(maps, tokens, layer, head, query)
    layer = widgets.Dropdown(options=list(maps), value=first, description="layer")
    head = widgets.Dropdown(options=list(range(maps[first].shape[0])), value=head, description="head")
    query = widgets.Dropdown(options=[(f"{i}: {t}", i) for i, t in enumerate(tokens)], value=query,
                             description="query")
    out = widgets.Output()
    syncing = False  # True while the head dropdown is refilled: its value changes, but there is nothing to draw yet

    def redraw(*_):
        if syncing:
            return
        fig = show_attention(maps, tokens, layer.value, head.value, query.value, highlight)
        with out:
            out.clear_output(wait=True)
            IPython.display.display(fig)
        plt.close(fig)

    def new_layer(*_):
        nonlocal syncing
        n_heads = maps[layer.value].shape[0]
        if list(head.options) != list(range(n_heads)):
            kept = head.value if head.value < n_heads else 0
            syncing = True
            try:
                head.options = list(range(n_heads))  # resets the value to the first option
                head.value = kept
            finally:
                syncing = False
        redraw()

    layer.observe(new_layer, names="value")
    head.observe(redraw, names="value")
    query.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([layer, head, query]), out])
