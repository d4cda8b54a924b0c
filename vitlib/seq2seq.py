"""An encoder-decoder transformer (the T5 layout) assembled from chapter 02's cross-attention and chapter 03's
blocks (chapter 03).

    encoder   s = Encoder(E[src] + P)                                every source token sees every other
    decoder   y <- y + MHA(LN_1(y), causal)                          target token t sees targets <= t
              y <- y + MHA(LN_2(y), context = s)                     cross-attention: every source token
              y <- y + FFN(LN_3(y))
    logits    LN(y) E^T                                              one embedding E, shared and tied

BERT is the encoder alone, GPT the decoder without its cross-attention, T5 both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .checks import check_int, check_token_ids
from .transformer import Encoder, FeedForward

__all__ = ["DecoderBlock", "EncoderDecoder"]


class DecoderBlock(nn.Module):
    """Pre-LN decoder block: causal self-attention, cross-attention to the encoder's output, FFN; each a residual."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(d_model), MultiHeadAttention(d_model, n_heads)
        self.norm2, self.cross_attn = nn.LayerNorm(d_model), MultiHeadAttention(d_model, n_heads)
        self.norm3, self.ffn = nn.LayerNorm(d_model), FeedForward(d_model, 4 * d_model if d_ff is None else d_ff)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None):
        """y (B, T, d_model), memory (B, S, d_model), memory_mask (B, S) True for real source tokens -> (B, T, d)."""
        y = y + self.self_attn(self.norm1(y), is_causal=True)
        y = y + self.cross_attn(self.norm2(y), context=memory, attention_mask=memory_mask)
        return y + self.ffn(self.norm3(y))


class EncoderDecoder(nn.Module):
    """(source ids (B, S), target ids (B, T)) -> next-target-token logits (B, T, vocab_size)."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_heads: int, n_layers: int):
        super().__init__()
        check_int(vocab_size, "vocab_size")
        check_int(max_len, "max_len")
        self.vocab_size, self.max_len = vocab_size, max_len
        self.token_emb, self.pos_emb = nn.Embedding(vocab_size, d_model), nn.Embedding(max_len, d_model)
        self.encoder = Encoder(d_model, n_heads, n_layers)
        self.decoder = nn.ModuleList(DecoderBlock(d_model, n_heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def embed(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        """ids (B, L) -> E[ids] + P[0..L-1], (B, L, d_model)."""
        check_token_ids(ids, self.vocab_size, self.token_emb.weight.device, name)
        if not 0 < ids.shape[1] <= self.max_len:
            raise ValueError(f"{name} must have 1 to {self.max_len} tokens, got {tuple(ids.shape)}")
        return self.token_emb(ids) + self.pos_emb(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, src_ids: torch.Tensor, tgt_ids: torch.Tensor, src_mask: torch.Tensor | None = None):
        memory = self.encoder(self.embed(src_ids, "src_ids"), attention_mask=src_mask)   # (B, S, d_model)
        y = self.embed(tgt_ids, "tgt_ids")                                                # (B, T, d_model)
        if y.shape[0] != memory.shape[0]:
            raise ValueError(f"src_ids and tgt_ids must have the same batch size, got {memory.shape[0]} and "
                             f"{y.shape[0]}")
        for block in self.decoder:
            y = block(y, memory, src_mask)
        return F.linear(self.norm(y), self.token_emb.weight)                             # (B, T, V): tied head
