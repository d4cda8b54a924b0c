"""Pictures for the course, one module per kind (chapters 00, 02, 04, 05, 06):

- `vitlib.viz.images`: `to_image` (the one converter from the course's image formats to what matplotlib draws)
  and `show_images` (grids with captions);
- `vitlib.viz.attention`: attention maps, masks, one query's weights, attention over image patches;
- `vitlib.viz.widgets`: ipywidgets panels (`attention_explorer`), live while a kernel runs;
- `vitlib.viz.interactive`: self-contained HTML + JavaScript figures that stay interactive in the rendered book
  (`attention_html`, `retrieval_html`, `itm_html`, shown with `display_html`).

Import from here: ``from vitlib.viz import show_images, attention_explorer``.
"""

from vitlib.viz.attention import plot_attention, plot_mask, plot_patch_attention, plot_query, show_attention
from vitlib.viz.images import show_images, to_image
from vitlib.viz.interactive import attention_html, display_html, itm_html, retrieval_html
from vitlib.viz.widgets import attention_explorer

__all__ = ["attention_explorer", "attention_html", "display_html", "itm_html", "plot_attention", "plot_mask",
           "plot_patch_attention", "plot_query", "retrieval_html", "show_attention", "show_images", "to_image"]
