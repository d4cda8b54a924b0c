"""Cross-modal fusion: how a language model takes in an image (chapter 06 builds the fusion encoder; chapter 07
gathers every operator here and compares them on VQA).

Vectors (seed 001): v_i an image vector, V = (v_1 .. v_S) the image's patch tokens, v_t a text vector.
    concatenation        v_it = GELU(W [v_i ; v_t] + b)                                          ConcatFusion
    attention fusion     S_j = v_j^T W v_t / sqrt(d),  alpha = softmax(S),  v_it = sum_j alpha_j v_j   AttentionFusion
Tokens: X = (x_1 .. x_T) the text's hidden states.
    cross-attention      X <- X + CA(LN X, V);  X <- X + FFN(LN X)   queries: words; keys, values: patches
                                                                                        CrossAttentionFusion
    gated (Flamingo)     X <- X + tanh(a) CA(LN X, V);  X <- X + tanh(b) FFN(LN X),  a = b = 0 at the start
                                                                                        GatedCrossAttention
    resampler            Q <- Q + CA(LN Q, V);  Q <- Q + FFN(LN Q);  K learned queries Q -> K image tokens
                                                                                        Resampler
    projector (LLaVA)    H = W V (linear) or W_2 GELU(W_1 V) (mlp): patches -> tokens of the LM's width
                                                                                        Projector
    fusion layer         X <- X + SA(LN X);  X <- X + CA(LN X, V);  X <- X + FFN(LN X)     FusionLayer, FusionEncoder

A ``FusionEncoder`` stacks fusion layers and a final LayerNorm: it is PyTorch's ``nn.TransformerDecoder`` with
``norm_first=True`` run without a causal mask (the text attends both ways), as ALBEF's and BLIP's fusion encoders.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import MultiHeadAttention
from .checks import check_int, check_like, check_number, check_one_of, describe
from .transformer import FeedForward, torch_stack_settings

__all__ = ["ConcatFusion", "AttentionFusion", "CrossAttentionFusion", "GatedCrossAttention", "Resampler",
           "Projector", "FusionLayer", "FusionEncoder", "PROJECTOR_KINDS"]

PROJECTOR_KINDS = ("linear", "mlp")



def _check_finite(x, name: str) -> None:
    if not torch.isfinite(x).all():   # a NaN in one patch would spread to every word that attends to it
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_tokens(x, name: str, width: int, weight: torch.Tensor, batch: int | None = None) -> None:
    """x must be finite (B, L, width) with B, L >= 1 (and B = ``batch`` when given), floating like ``weight``."""
    check_like(x, name, weight)
    if x.dim() != 3 or x.shape[-1] != width or 0 in x.shape[:2] or (batch is not None and x.shape[0] != batch):
        rows = "B" if batch is None else batch
        raise ValueError(f"{name} must have shape ({rows}, length, {width}) with length >= 1, got {describe(x)}")
    _check_finite(x, name)


def _check_vector(x, name: str, width: int, weight: torch.Tensor, batch: int | None = None) -> None:
    check_like(x, name, weight)
    if x.dim() != 2 or x.shape[-1] != width or x.shape[0] == 0 or (batch is not None and x.shape[0] != batch):
        rows = "B >= 1" if batch is None else batch
        raise ValueError(f"{name} must have shape ({rows}, {width}), got {describe(x)}")
    _check_finite(x, name)


class ConcatFusion(nn.Module):
    """Seed 001's concatenation: v_it = GELU(W [v_i ; v_t] + b): image (B, d_image), text (B, d_text) -> (B, d_out).

    Each half of W sees one modality; the two meet only in the sum, so a pooled image vector must already hold
    whatever the question asks about (chapter 07 shows what pooling loses)."""

    def __init__(self, d_image: int, d_text: int, d_out: int):
        super().__init__()
        for name, value in (("d_image", d_image), ("d_text", d_text), ("d_out", d_out)):
            check_int(value, name)
        self.d_image, self.d_text = d_image, d_text
        self.proj, self.act = nn.Linear(d_image + d_text, d_out), nn.GELU()

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        _check_vector(image, "image", self.d_image, self.proj.weight)
        _check_vector(text, "text", self.d_text, self.proj.weight, batch=image.shape[0])
        return self.act(self.proj(torch.cat([image, text], dim=-1)))       # (B, d_image + d_text) -> (B, d_out)


class AttentionFusion(nn.Module):
    """Seed 001's attention fusion: the text vector picks the patches, v_it = sum_j alpha_j v_j (B, d_image).

        S_j = v_j^T W v_t / sqrt(d_image),   alpha = softmax(S) over the patches j

    W (d_image x d_text) maps the text into the image's space; with ``project=False`` W = I (the widths must
    agree) and S_j = v_j^T v_t / sqrt(d): the seed's S = v_i^T v_t with chapter 02's 1 / sqrt(d), which keeps the
    softmax from saturating. One softmax, one glimpse: a question about two objects gets one average of them."""

    def __init__(self, d_image: int, d_text: int, project: bool = True):
        super().__init__()
        check_int(d_image, "d_image")
        check_int(d_text, "d_text")
        if not project and d_image != d_text:
            raise ValueError(f"project=False needs d_image == d_text (S_j = v_j^T v_t), got {d_image} and {d_text}")
        self.d_image, self.d_text = d_image, d_text
        self.to_image = nn.Linear(d_text, d_image, bias=False) if project else nn.Identity()
        self.register_buffer("_probe", torch.zeros(()), persistent=False)   # dtype and device for the checks

    def weights(self, image: torch.Tensor, text: torch.Tensor, image_mask: torch.Tensor | None = None):
        """alpha (B, S): where the text looks. image (B, S, d_image), text (B, d_text), image_mask (B, S) bool."""
        _check_tokens(image, "image", self.d_image, self._probe)
        _check_vector(text, "text", self.d_text, self._probe, batch=image.shape[0])
        scores = (image @ self.to_image(text)[:, :, None])[..., 0] / math.sqrt(self.d_image)   # (B, S)
        if image_mask is not None:
            if getattr(image_mask, "shape", None) != scores.shape or image_mask.dtype != torch.bool:
                raise ValueError(f"image_mask must be a bool tensor of shape {tuple(scores.shape)}, got "
                                 f"{describe(image_mask)}")
            scores = scores.masked_fill(~image_mask, float("-inf"))
        return scores.softmax(dim=-1)

    def forward(self, image: torch.Tensor, text: torch.Tensor, image_mask: torch.Tensor | None = None):
        alpha = self.weights(image, text, image_mask)                      # (B, S)
        return (alpha[:, :, None] * image).sum(dim=1)                      # (B, d_image)


class CrossAttentionFusion(nn.Module):
    """X <- X + CA(LN X, V);  X <- X + FFN(LN X): the words (B, T, d_model) read the patches (B, S, d_context)."""

    def __init__(self, d_model: int, n_heads: int, d_context: int | None = None, d_ff: int | None = None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, d_context=d_context)
        self.ffn = FeedForward(d_model, 4 * d_model if d_ff is None else d_ff)

    def _check(self, text, image) -> None:
        _check_tokens(text, "text", self.cross_attn.d_model, self.norm1.weight)
        _check_tokens(image, "image", self.cross_attn.d_context, self.norm1.weight, batch=text.shape[0])

    def forward(self, text: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor | None = None):
        self._check(text, image)
        x = text + self.cross_attn(self.norm1(text), context=image, attention_mask=image_mask)
        return x + self.ffn(self.norm2(x))                                 # (B, T, d_model)

    def attention(self, text: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor | None = None):
        """The cross-attention weights per head (B, H, T, S): which patches word t looks at."""
        self._check(text, image)
        return self.cross_attn.head_weights(self.norm1(text), context=image, attention_mask=image_mask)


class GatedCrossAttention(CrossAttentionFusion):
    """Flamingo's block, inserted before a frozen LM layer: each residual branch is scaled by tanh of a learned
    scalar that starts at 0, so at initialisation the block is exactly the identity and the LM is unchanged.

        X <- X + tanh(alpha_xattn) CA(LN X, V);   X <- X + tanh(alpha_ffw) FFN(LN X)"""

    def __init__(self, d_model: int, n_heads: int, d_context: int | None = None, d_ff: int | None = None):
        super().__init__(d_model, n_heads, d_context, d_ff)
        self.alpha_xattn, self.alpha_ffw = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))

    def forward(self, text: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor | None = None):
        self._check(text, image)
        x = text + self.alpha_xattn.tanh() * self.cross_attn(self.norm1(text), context=image, attention_mask=image_mask)
        return x + self.alpha_ffw.tanh() * self.ffn(self.norm2(x))         # (B, T, d_model)


class Resampler(nn.Module):
    """K learned queries read the patches: (B, S, d_context) -> (B, K, d_model), as Flamingo's Perceiver resampler
    and BLIP-2's Q-Former hand a fixed, small number of image tokens to the LM, whatever S is.

        Q = (q_1 .. q_K) learned;  per layer  Q <- Q + CA(LN Q, V);  Q <- Q + FFN(LN Q);  then LN"""

    def __init__(self, d_model: int, n_heads: int, n_queries: int, d_context: int | None = None, n_layers: int = 1):
        super().__init__()
        check_int(n_queries, "n_queries")
        check_int(n_layers, "n_layers")
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionFusion(d_model, n_heads, d_context) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, image: torch.Tensor, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_tokens(image, "image", self.layers[0].cross_attn.d_context, self.norm.weight)
        q = self.queries.expand(len(image), -1, -1)                        # (B, K, d_model)
        for layer in self.layers:
            q = layer(q, image, image_mask)
        return self.norm(q)


class Projector(nn.Module):
    """LLaVA's projector, patch tokens (B, S, d_image) -> LM-width tokens (B, S, d_model) placed before the words:
    ``"linear"`` H = W V + b (LLaVA), ``"mlp"`` H = W_2 GELU(W_1 V + b_1) + b_2 (LLaVA-1.5's mlp2x_gelu)."""

    def __init__(self, d_image: int, d_model: int, kind: str = "mlp"):
        super().__init__()
        check_int(d_image, "d_image")
        check_int(d_model, "d_model")
        check_one_of(kind, "kind", PROJECTOR_KINDS)
        self.d_image, self.kind = d_image, kind
        self.net = nn.Linear(d_image, d_model) if kind == "linear" else \
            nn.Sequential(nn.Linear(d_image, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_tokens(image, "image", self.d_image, next(self.parameters()))
        return self.net(image)

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
