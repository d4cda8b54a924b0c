"""Pictures for the course, one module per kind (chapters 00, 02, 04, 05, 06):

- `vitlib.viz.images`: `to_image` (the one converter from the course's image formats to what matplotlib draws)
  and `show_images` (grids with captions);
- `vitlib.viz.attention`: attention maps, masks, one query's weights, attention over image patches;
- `vitlib.viz.widgets`: ipywidgets panels (`attention_explorer`).

Import from here: ``from vitlib.viz import show_images, attention_explorer``.
"""

from vitlib.viz.attention import plot_attention, plot_mask, plot_patch_attention, plot_query, show_attention
from vitlib.viz.images import show_images, to_image
from vitlib.viz.widgets import attention_explorer

__all__ = ["attention_explorer", "plot_attention", "plot_mask", "plot_patch_attention", "plot_query",
           "show_attention", "show_images", "to_image"]
