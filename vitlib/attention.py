"""Attention: scaled dot-product attention, masks, multi-head attention, cross-attention (chapter 02).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Masks follow PyTorch's ``F.scaled_dot_product_attention``: a boolean mask is True where a query may attend, a float
mask is added to the scores. ``impl="naive"`` is the formula written out (what chapter 02 derives); ``impl="fused"``
calls PyTorch's fused kernel. Tests prove the two equal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .checks import check_divisible, check_int, check_like, check_number, check_one_of, check_probability, describe

IMPLS = ("naive", "fused")


def causal_mask(L: int, S: int, offset: int = 0, device=None) -> torch.Tensor:
    """Boolean (L, S) mask, True where query i may see key j: j <= i + offset.

    ``offset=0`` is PyTorch's ``is_causal`` (the triangle aligned to the top left). With a KV cache the L new
    queries follow ``offset`` cached positions, so query i sits at position offset + i and sees keys up to it.
    """
    for name, n in (("L", L), ("S", S), ("offset", offset)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"causal_mask: {name} must be an int >= 0, got {n!r}")
    return torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=offset)


def _check_qkv(q, k, v, mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., length, features), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k, v are on different devices: {q.device}, {k.device}, {v.device}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"query and key feature sizes differ: q {tuple(q.shape)} vs k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys and values must have the same length: k {tuple(k.shape)} vs v {tuple(v.shape)}")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"batch dimensions do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}") from None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a tensor or None, got {type(mask).__name__}")
        if mask.dtype != torch.bool and mask.dtype != q.dtype:
            raise ValueError(f"mask must be bool (True = attend) or {q.dtype} (added to scores), got {mask.dtype}")
        if mask.device != q.device:
            raise ValueError(f"mask is on {mask.device} but q is on {q.device}")
        target = (*batch, q.shape[-2], k.shape[-2])
        try:
            if torch.broadcast_shapes(mask.shape, target) != torch.Size(target):
                raise RuntimeError
        except RuntimeError:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                             f"{target} (..., queries, keys)") from None


def _check_options(is_causal, scale) -> None:
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {describe(is_causal)}")
    if scale is not None:
        check_number(scale, "scale")


def attention_weights(q, k, mask=None, is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """softmax(Q K^T * scale + M): (..., L, S).

    As in PyTorch, a row whose every key is masked gets all-zero weights, and a NaN in the inputs stays NaN.
    """
    _check_qkv(q, k, k, mask)   # k stands in for the values: only its shape, dtype and device are read
    _check_options(is_causal, scale)
    return _weights(q, k, mask, is_causal, scale)


def _weights(q, k, mask, is_causal: bool, scale: float | None) -> torch.Tensor:
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L, S)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], device=q.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1)
    if is_causal or mask is not None:  # only a mask can leave a row with nothing to attend to (0/0)
        dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (..., L, 1)
        weights = weights.masked_fill(dead, 0.0)
    return weights


def scaled_dot_product_attention(q, k, v, mask=None, is_causal: bool = False, dropout_p: float = 0.0,
                                 impl: str = "naive", scale: float | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k) + M) V for q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev).

    ``mask``: bool (True = attend) or float (added), broadcastable to (..., L, S); ``is_causal`` hides future
    keys, the triangle aligned to the top left as in PyTorch (a KV cache passes ``causal_mask(L, S, offset)``
    as ``mask`` instead). ``impl``: "naive" (the formula) or "fused" (PyTorch's kernel).
    """
    check_one_of(impl, "impl", IMPLS)
    check_probability(dropout_p, "dropout_p")
    _check_qkv(q, k, v, mask)
    _check_options(is_causal, scale)
    if impl == "fused":
        if is_causal and mask is not None:  # PyTorch takes one or the other; fold the triangle into the mask
            tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
            mask = (mask & tri) if mask.dtype == torch.bool else torch.where(tri, mask, float("-inf"))
            is_causal = False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                                              scale=scale)
    weights = _weights(q, k, mask, is_causal, scale)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v  # (..., L, Ev)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: h heads attend in parallel in d_model / h dimensions each (chapter 02).

        head_i = Attention(X W_i^Q, C W_i^K, C W_i^V),  MHA(X, C) = concat(head_1..head_h) W^O

    Self-attention when ``context`` is None (C = X); cross-attention otherwise (queries from X, keys and values
    from C, e.g. image features). ``attention_mask`` (B, S) is True for real keys and False for padding.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0,
                 d_context: int | None = None, impl: str = "fused"):
        super().__init__()
        check_int(d_model, "d_model")
        check_int(n_heads, "n_heads")
        check_divisible(d_model, "d_model", n_heads, "n_heads")
        check_probability(dropout, "dropout")
        check_one_of(impl, "impl", IMPLS)
        d_context = d_model if d_context is None else d_context
        check_int(d_context, "d_context")
        self.d_model, self.n_heads, self.d_context, self.dropout, self.impl = d_model, n_heads, d_context, dropout, impl
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_context, d_model, bias=bias)
        self.v_proj = nn.Linear(d_context, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, context=None, attention_mask=None, attn_mask=None, is_causal: bool = False,
                past_kv=None, use_cache: bool = False, need_weights: bool = False):
        """x (B, T, d_model), context (B, S, d_context) or None -> (B, T, d_model).

        attn_mask: (T, S) or (B, T, S) bool/float as in ``scaled_dot_product_attention``. past_kv: the (k, v) this
        layer returned at earlier steps, each (B, H, P, Dh); with ``use_cache`` the new (k, v) is returned too.
        With ``need_weights`` the head-averaged weights (B, T, S) are returned too.
        """
        c = self._context(x, context)
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)  # (B, H, T, Dh)
        k = rearrange(self.k_proj(c), "b s (h d) -> b h s d", h=self.n_heads)  # (B, H, S, Dh)
        v = rearrange(self.v_proj(c), "b s (h d) -> b h s d", h=self.n_heads)  # (B, H, S, Dh)
        if past_kv is not None:
            self._check_past(past_kv, k)
            k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)  # (B, H, P + S, Dh)
        offset = 0 if past_kv is None else past_kv[0].shape[2]  # the new queries follow the cached positions
        mask = self._mask(x.shape[0], q.shape[2], k.shape[2], attention_mask, attn_mask, is_causal, x.device, offset)
        p = self.dropout if self.training else 0.0
        if need_weights:
            weights = _weights(q, k, mask, False, None)  # (B, H, T, S)
            out = F.dropout(weights, p) @ v
        else:
            out = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p, impl=self.impl)
        out = self.out_proj(rearrange(out, "b h t d -> b t (h d)"))  # (B, T, d_model)
        extra = ((k, v),) if use_cache else ()
        extra += (weights.mean(dim=1),) if need_weights else ()
        return (out, *extra) if extra else out

    def head_weights(self, x, context=None, attention_mask=None, attn_mask=None, is_causal: bool = False):
        """The attention weights of every head, (B, H, T, S), for the same inputs as ``forward`` (no cache).

        ``forward(..., need_weights=True)`` returns their mean over heads; attention-map plots want each head.
        """
        c = self._context(x, context)
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)  # (B, H, T, Dh)
        k = rearrange(self.k_proj(c), "b s (h d) -> b h s d", h=self.n_heads)  # (B, H, S, Dh)
        mask = self._mask(x.shape[0], q.shape[2], k.shape[2], attention_mask, attn_mask, is_causal, x.device)
        return _weights(q, k, mask, False, None)  # (B, H, T, S)

    def _context(self, x, context):
        """Check x (B, T, d_model) and context (B, S, d_context); return the tensor keys and values come from."""
        c = x if context is None else context
        check_like(x, "x", self.q_proj.weight)
        check_like(c, "context", self.k_proj.weight)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (batch, length, {self.d_model}), got {tuple(x.shape)}")
        if c.dim() != 3 or c.shape[-1] != self.d_context or c.shape[0] != x.shape[0]:
            raise ValueError(f"context must have shape ({x.shape[0]}, length, {self.d_context}), got {tuple(c.shape)}")
        return c

    @staticmethod
    def _check_past(past_kv, k) -> None:
        """past_kv: the (k, v) of earlier steps, each (B, H, P, Dh) like this step's k (B, H, S, Dh)."""
        B, H, _, Dh = k.shape
        if not (isinstance(past_kv, (tuple, list)) and len(past_kv) == 2 and
                all(isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[:2] == (B, H) and t.shape[3] == Dh
                    and t.shape[2] == past_kv[0].shape[2] and t.dtype == k.dtype and t.device == k.device
                    for t in past_kv)):
            got = [describe(t) for t in past_kv] if isinstance(past_kv, (tuple, list)) else describe(past_kv)
            raise ValueError(f"past_kv must be the (k, v) an earlier call returned, each {k.dtype} ({B}, {H}, P, "
                             f"{Dh}) on {k.device}; got {got}")

    @staticmethod
    def _mask(B, T, S, attention_mask, attn_mask, is_causal, device, offset: int = 0):
        """Combine padding, explicit and causal masks into one bool/float mask broadcastable to (B, H, T, S)."""
        mask = None
        if attention_mask is not None:
            if getattr(attention_mask, "shape", None) != (B, S) or attention_mask.dtype != torch.bool:
                raise ValueError(f"attention_mask must be a bool tensor of shape ({B}, {S}) (True = real key), "
                                 f"got {describe(attention_mask)}")
            mask = attention_mask[:, None, None, :]  # (B, 1, 1, S)
        if is_causal:
            tri = causal_mask(T, S, offset, device)  # (T, S): query t sits at position offset + t
            mask = tri if mask is None else mask & tri
        if attn_mask is not None:
            if not isinstance(attn_mask, torch.Tensor) or attn_mask.dim() not in (2, 3) or \
                    attn_mask.shape[-2:] != (T, S):
                raise ValueError(f"attn_mask must have shape ({T}, {S}) or ({B}, {T}, {S}), got {describe(attn_mask)}")
            extra = attn_mask if attn_mask.dim() == 2 else attn_mask[:, None]  # (B, 1, T, S)
            if mask is None:
                mask = extra
            elif extra.dtype == torch.bool:
                mask = mask & extra
            else:
                mask = torch.where(mask, extra, float("-inf"))
        return mask

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, impl: str = "fused") -> "MultiHeadAttention":
        """A MultiHeadAttention with the weights of a batch-first ``nn.MultiheadAttention`` copied in."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"expected nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha.batch_first:
            raise ValueError("only batch_first=True modules are supported: ours take (batch, length, features)")
        if mha.kdim != mha.vdim:
            raise ValueError(f"keys and values must share a width to convert, got kdim={mha.kdim}, vdim={mha.vdim}")
        if mha.bias_k is not None:
            raise ValueError("add_bias_kv=True has no counterpart here")
        bias = mha.in_proj_bias is not None
        ours = cls(mha.embed_dim, mha.num_heads, bias=bias, dropout=mha.dropout, d_context=mha.kdim, impl=impl)
        if mha._qkv_same_embed_dim:
            w_q, w_k, w_v = mha.in_proj_weight.detach().chunk(3)  # each (d_model, d_model)
        else:
            w_q, w_k, w_v = (mha.q_proj_weight.detach(), mha.k_proj_weight.detach(), mha.v_proj_weight.detach())
        with torch.no_grad():
            for proj, w in ((ours.q_proj, w_q), (ours.k_proj, w_k), (ours.v_proj, w_v)):
                proj.weight.copy_(w)
            if bias:
                for proj, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), mha.in_proj_bias.detach().chunk(3)):
                    proj.bias.copy_(b)
                ours.out_proj.bias.copy_(mha.out_proj.bias)
            ours.out_proj.weight.copy_(mha.out_proj.weight)
        return ours.to(mha.out_proj.weight.device, mha.out_proj.weight.dtype)
