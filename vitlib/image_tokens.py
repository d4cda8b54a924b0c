"""Image tokens: how a vision tower's hidden states become the vectors a language model reads (chapter 11).

    V = Z[layer]                     Z = (z_0 .. z_L), each (B, 1 + S, w): the embeddings, then each layer's output;
                                     without the class token ("patch", LLaVA's "default") or with it ("full")
    x_t = h_k(t) where w_t = <image>, E[w_t] elsewhere         the k-th <image> position takes the k-th image token

``vitlib.vlm`` joins them with a projector and a GPT; transformers' LLaVA does the same with ``masked_scatter``.
"""

from __future__ import annotations

import torch

from .checks import check_like, check_one_of, describe

__all__ = ["FEATURE_SELECTS", "select_features", "splice"]

FEATURE_SELECTS = ("patch", "full")


def select_features(hidden_states, layer: int, strategy: str = "patch") -> torch.Tensor:
    """V = hidden_states[layer], (B, 1 + S, w) each (embeddings first, then each layer, as transformers'
    ``output_hidden_states``) -> (B, S, w) without the class token ("patch") or (B, 1 + S, w) with it ("full")."""
    if not isinstance(hidden_states, (tuple, list)) or not hidden_states or not all(
            isinstance(z, torch.Tensor) and z.dim() == 3 and z.shape == hidden_states[0].shape for z in hidden_states):
        got = [describe(z) for z in hidden_states] if isinstance(hidden_states, (tuple, list)) else hidden_states
        raise ValueError(f"hidden_states must be a non-empty tuple of (B, 1 + S, w) tensors of one shape, got {got}")
    n = len(hidden_states)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
        raise ValueError(f"layer must be an int in [{-n}, {n - 1}] for {n} hidden states, got {layer!r}")
    check_one_of(strategy, "strategy", FEATURE_SELECTS)
    z = hidden_states[layer]
    return z[:, 1:] if strategy == "patch" else z                        # (B, S, w) or (B, 1 + S, w)


def splice(inputs_embeds: torch.Tensor, image_features: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
    """inputs_embeds (B, T, d) with the positions where image_mask (B, T) is True replaced, in order, by each row's
    N image features (B, N, d): transformers' ``masked_scatter``. Each row must have exactly N such positions."""
    if not isinstance(inputs_embeds, torch.Tensor) or not inputs_embeds.is_floating_point():
        raise TypeError(f"inputs_embeds must be a float tensor (B, T, d), got {describe(inputs_embeds)}")
    check_like(image_features, "image_features", inputs_embeds)
    if inputs_embeds.dim() != 3 or image_features.dim() != 3 or image_features.shape[::2] != inputs_embeds.shape[::2]:
        raise ValueError(f"inputs_embeds must be (B, T, d) and image_features (B, N, d), got "
                         f"{describe(inputs_embeds)} and {describe(image_features)}")
    if not isinstance(image_mask, torch.Tensor) or image_mask.dtype != torch.bool or \
            image_mask.shape != inputs_embeds.shape[:2] or image_mask.device != inputs_embeds.device:
        raise ValueError(f"image_mask must be a bool tensor {tuple(inputs_embeds.shape[:2])} beside inputs_embeds, "
                         f"got {describe(image_mask)}")
    counts, N = image_mask.sum(dim=1), image_features.shape[1]         # (B,): image positions per row
    if (counts != N).any():
        b = int((counts != N).nonzero()[0])
        raise ValueError(f"row {b} has {int(counts[b])} image token positions but there are {N} image features "
                         "per image: the prompt must hold one <image> id per image token")
    # row-major: row b's positions take the b-th block of N d values, i.e. its own features
    return inputs_embeds.masked_scatter(image_mask[..., None], image_features)   # (B, T, d)
