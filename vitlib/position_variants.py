"""Where a GPT learns word order: no positions, learned, sinusoidal or rotary ones (chapter 03; chapter 01 derives
the encodings).

    none         h_0[t] = E[x_t]                     only the causal mask orders the tokens
    learned      h_0[t] = E[x_t] + P[t]              P trained: GPT-2, and ``vitlib.transformer.GPT`` itself
    sinusoidal   h_0[t] = E[x_t] + s PE[t]           PE fixed (Vaswani et al.), scaled to rms s = 0.02, the
                                                     standard deviation P starts with
    rope         h_0[t] = E[x_t];  in every attention layer q_m, k_n rotated by m theta_i, n theta_i (Su et al.),
                 so that q_m . k_n depends on m - n only

``gpt_with_positions(config, mode)`` builds a ``vitlib.transformer.GPT`` and changes only where positions enter. The
modes without a learned table keep P (so the parameter layout is GPT's) but fix it, at zero or at s PE, and never
train it. The same seed gives every mode the same initial weights.
"""

from __future__ import annotations

import torch
from einops import rearrange

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .checks import check_one_of
from .positional import apply_rope, sinusoidal_encoding
from .transformer import GPT, GPTConfig

__all__ = ["POSITION_MODES", "SINUSOIDAL_RMS", "RotaryAttention", "gpt_with_positions"]

POSITION_MODES = ("none", "learned", "sinusoidal", "rope")
SINUSOIDAL_RMS = 0.02


class RotaryAttention(MultiHeadAttention):
    """Causal or bidirectional self-attention whose queries and keys are rotated by RoPE: (B, T, d_model) ->
    (B, T, d_model). Keeps a KV cache like ``MultiHeadAttention`` (cached keys are stored rotated)."""

    def forward(self, x, attention_mask=None, is_causal: bool = False, past_kv=None, use_cache: bool = False):
        self._context(x, None)
        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.n_heads)                # (B, H, T, Dh)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.n_heads)                # (B, H, T, Dh)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.n_heads)                # (B, H, T, Dh)
        if past_kv is not None:
            self._check_past(past_kv, k)
        offset = 0 if past_kv is None else past_kv[0].shape[2]   # the new tokens follow the cached ones
        m = torch.arange(offset, offset + x.shape[1], device=x.device)                      # (T,): positions
        q, k = apply_rope(q, m), apply_rope(k, m)                                            # rotate by m theta_i
        if past_kv is not None:
            k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)      # (B, H, P + T, Dh)
        mask = self._mask(x.shape[0], q.shape[2], k.shape[2], attention_mask, None, is_causal, x.device, offset)
        out = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           impl=self.impl)                                   # (B, H, T, Dh)
        out = self.out_proj(rearrange(out, "b h t d -> b t (h d)"))                          # (B, T, d_model)
        return (out, (k, v)) if use_cache else out


def gpt_with_positions(config: GPTConfig, mode: str = "learned") -> GPT:
    """A GPT of ``config`` whose token order reaches it as ``mode`` says (see the module docstring)."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"gpt_with_positions expects a GPTConfig, got {type(config).__name__}")
    check_one_of(mode, "position mode", POSITION_MODES)
    model = GPT(config)
    if mode == "learned":
        return model
    table = model.transformer.pos_emb.weight                                                 # (max_len, d_model)
    with torch.no_grad():
        if mode == "sinusoidal":
            pe = sinusoidal_encoding(config.max_len, config.d_model)                         # (max_len, d_model)
            table.copy_(pe * SINUSOIDAL_RMS / pe.pow(2).mean().sqrt())
        else:
            table.zero_()
    table.requires_grad_(False)
    if mode == "rope":
        for block in model.transformer.blocks:
            rotary = RotaryAttention(config.d_model, config.n_heads, dropout=config.dropout)
            rotary.load_state_dict(block.attn.state_dict())
            block.attn = rotary
    return model
