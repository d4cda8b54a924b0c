"""Cross-modal fusion: words that attend to image tokens (chapter 06; chapter 07 adds concatenation, attention
fusion, gated cross-attention, a learned-query resampler and a projector, compared on VQA).

    fusion layer (pre-LN):   h <- h + SA(LN_1 h);   h <- h + CA(LN_2 h, V);   h <- h + FFN(LN_3 h)
    CA(h, V) = softmax((h W_Q)(V W_K)^T / sqrt(d_k)) V W_V            queries: the words; keys, values: the image

A ``FusionEncoder`` stacks fusion layers and a final LayerNorm: it is PyTorch's ``nn.TransformerDecoder`` with
``norm_first=True`` run without a causal mask (the text attends both ways), as ALBEF's and BLIP's fusion encoders.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadAttention
from .checks import check_int, check_like, check_number
from .transformer import FeedForward, torch_stack_settings

__all__ = ["FusionLayer", "FusionEncoder"]


class FusionLayer(nn.Module):
    """Pre-LN: self-attention over the text, cross-attention from the text to the image tokens, FFN (no dropout)."""

    def __init__(self, d_model: int, n_heads: int, d_context: int | None = None, d_ff: int | None = None,
                 activation: str = "gelu", norm_eps: float = 1e-5):
        super().__init__()
        check_number(norm_eps, "norm_eps", 0.0, low_open=True)   # eps <= 0 can divide by zero: NaN
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model, eps=norm_eps) for _ in range(3))
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, d_context=d_context)
        self.ffn = FeedForward(d_model, 4 * d_model if d_ff is None else d_ff, activation)

    def forward(self, x, image, attention_mask=None, return_weights: bool = False):
        """x (B, T, d_model), image (B, S, d_context), attention_mask (B, T) bool, True = real token. With
        ``return_weights``: (output, the cross-attention weights per head (B, H, T, S))."""
        x = x + self.self_attn(self.norm1(x), attention_mask=attention_mask)
        words = self.norm2(x)
        x = x + self.cross_attn(words, context=image)   # queries: words; keys and values: image tokens
        x = x + self.ffn(self.norm3(x))
        return (x, self.cross_attn.head_weights(words, context=image)) if return_weights else x


class FusionEncoder(nn.Module):
    """``FusionLayer``s, then a LayerNorm: text (B, T, d_model), image (B, S, d_context) -> (B, T, d_model)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, d_context: int | None = None,
                 d_ff: int | None = None, activation: str = "gelu", norm_eps: float = 1e-5):
        super().__init__()
        check_int(n_layers, "n_layers")
        self.d_model, self.d_context = d_model, d_model if d_context is None else d_context
        self.layers = nn.ModuleList(FusionLayer(d_model, n_heads, d_context, d_ff, activation, norm_eps)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)

    def forward(self, text: torch.Tensor, image: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self._check(text, image)
        for layer in self.layers:
            text = layer(text, image, attention_mask)
        return self.norm(text)

    def _check(self, text: torch.Tensor, image: torch.Tensor) -> None:
        check_like(text, "text", self.norm.weight)
        check_like(image, "image", self.norm.weight)
        if text.dim() != 3 or text.shape[-1] != self.d_model:
            raise ValueError(f"text must have shape (batch, length, {self.d_model}), got {tuple(text.shape)}")
        if image.dim() != 3 or image.shape[-1] != self.d_context or image.shape[0] != text.shape[0]:
            raise ValueError(f"image must have shape ({text.shape[0]}, S, {self.d_context}), got {tuple(image.shape)}")

    @torch.no_grad()
    def cross_attention(self, text: torch.Tensor, image: torch.Tensor,
                        attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Where the words look: the cross-attention weights of every layer, each (B, H, T, S) (head h, word t,
        image token s), for the same inputs as ``forward``."""
        self._check(text, image)
        maps = []
        for layer in self.layers:
            text, weights = layer(text, image, attention_mask, return_weights=True)   # weights (B, H, T, S)
            maps.append(weights)
        return maps

    @classmethod
    def from_torch(cls, decoder: nn.TransformerDecoder) -> FusionEncoder:
        """A FusionEncoder with the weights of a pre-LN (``norm_first=True``), batch-first ``nn.TransformerDecoder``
        with a final LayerNorm; equal to it in eval mode, run without ``tgt_mask`` (the text attends both ways)."""
        ref, act = torch_stack_settings(decoder, nn.TransformerDecoder)
        ours = cls(ref.self_attn.embed_dim, ref.self_attn.num_heads, len(decoder.layers), None,
                   ref.linear1.out_features, act, ref.norm1.eps)
        for layer, ref in zip(ours.layers, decoder.layers):
            layer.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
            layer.cross_attn = MultiHeadAttention.from_torch(ref.multihead_attn)
            for mine, theirs in ((layer.norm1, ref.norm1), (layer.norm2, ref.norm2), (layer.norm3, ref.norm3),
                                 (layer.ffn.fc1, ref.linear1), (layer.ffn.fc2, ref.linear2)):
                mine.load_state_dict(theirs.state_dict())
        ours.norm.load_state_dict(decoder.norm.state_dict())
        return ours.to(decoder.norm.weight.device)
