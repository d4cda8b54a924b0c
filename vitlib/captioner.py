"""An image captioner: a GPT decoder that cross-attends to an image's tokens, decoding autoregressively (chapter 10,
seed 004: "a visual encoder + a decoder that cross-attends to the visual features").

    V = (v_1 .. v_S)                 the frozen visual encoder's tokens (B, S, d_image); with
                                     image_pool="mean" the one token (1/S) sum_s v_s (B, 1, d_image)
    h_0 = E[y_t] + P[t]                                                  token + learned position embeddings
    h <- h + SA(LN_1 h)              causal self-attention: word t sees words <= t
    h <- h + CA(LN_2 h, V)           cross-attention: queries from the words, keys and values from the image,
                                     K_V = V W^K, V_V = V W^V (B, H, S, Dh), the same at every step
    h <- h + FFN(LN_3 h)             in each of n_layers pre-LN blocks
    p(y_(t+1) | y_<=t, V) = softmax(LN(h_t) E^T)                         LM head tied to the token embedding

Decoding with a KV cache keeps, per layer, the self-attention (k, v) of the words so far, which grow by one position
a step, and the image's cross-attention (K_V, V_V), computed at the first step and reused at every later one: the
image is projected once per caption, not once per word. ``Captioner.bind(image)`` fixes the image, so that the loops
of ``vitlib.decoding`` (greedy, sample, beam_search) drive the captioner as they drive a GPT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .checks import (MAX_SIZE, check_divisible, check_like, check_number, check_one_of, check_positive_ints,
                     check_probability, check_token_ids, describe)
from .decoding import greedy
from .transformer import ACTIVATIONS, FeedForward
from .zoo import register_model

__all__ = ["CaptionerConfig", "CaptionerBlock", "CaptionDecoder", "Captioner", "BoundCaptioner", "IMAGE_POOLS"]

IMAGE_POOLS = ("none", "mean")


@dataclass
class CaptionerConfig:
    """Sizes of a captioner. ``d_image``: the width of the image tokens it reads; ``d_ff`` defaults to 4 d_model;
    ``max_len``: the learned positions (<bos> and <eos> included); ``image_pool``: "none" reads every image token,
    "mean" reads their average, one vector per image, as the first captioners read one CNN feature."""

    vocab_size: int
    max_len: int
    d_model: int
    n_heads: int
    n_layers: int
    d_image: int
    d_ff: int | None = None
    dropout: float = 0.0
    activation: str = "gelu"
    norm_eps: float = 1e-5
    image_pool: str = "none"

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "max_len", "d_model", "n_heads", "n_layers", "d_image"))
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_positive_ints(self, ["d_ff"], maximum=4 * MAX_SIZE)
        check_divisible(self.d_model, "d_model", self.n_heads, "n_heads")
        check_one_of(self.activation, "activation", ACTIVATIONS)
        check_probability(self.dropout, "dropout")
        check_number(self.norm_eps, "norm_eps", 0.0, low_open=True)
        check_one_of(self.image_pool, "image_pool", IMAGE_POOLS)


class CaptionerBlock(nn.Module):
    """Pre-LN decoder block: causal self-attention, cross-attention to the image, FFN, each inside a residual."""

    def __init__(self, c: CaptionerConfig):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(c.d_model, eps=c.norm_eps) for _ in range(3))
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.dropout)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.dropout, d_context=c.d_image)
        self.ffn = FeedForward(c.d_model, c.d_ff, c.activation, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def image_kv(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The image's cross-attention keys and values (K_V, V_V), each (B, H, S, Dh): what the cache keeps."""
        a = self.cross_attn
        k = rearrange(a.k_proj(image), "b s (h d) -> b h s d", h=a.n_heads)   # (B, H, S, Dh)
        v = rearrange(a.v_proj(image), "b s (h d) -> b h s d", h=a.n_heads)   # (B, H, S, Dh)
        return k, v

    def cross_attend(self, x: torch.Tensor, image_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """CA(x, V) from the image's (K_V, V_V): ``cross_attn(x, context=image)`` without projecting the image."""
        a = self.cross_attn
        q = rearrange(a.q_proj(x), "b t (h d) -> b h t d", h=a.n_heads)      # (B, H, T, Dh)
        p = a.dropout if self.training else 0.0
        out = scaled_dot_product_attention(q, *image_kv, dropout_p=p, impl=a.impl)   # (B, H, T, Dh)
        return a.out_proj(rearrange(out, "b h t d -> b t (h d)"))            # (B, T, d_model)

    def forward(self, x, image_kv, past_kv=None, use_cache: bool = False):
        """x (B, T, d_model) -> (B, T, d_model); with ``use_cache`` also the words' (k, v), each (B, H, P+T, Dh)."""
        out = self.self_attn(self.norm1(x), is_causal=True, past_kv=past_kv, use_cache=use_cache)
        out, kv = out if use_cache else (out, None)
        x = x + self.drop(out)                                           # words read the earlier words
        x = x + self.drop(self.cross_attend(self.norm2(x), image_kv))    # ... then the image
        x = x + self.ffn(self.norm3(x))
        return (x, kv) if use_cache else x


class CaptionDecoder(nn.Module):
    """What every captioner shares: forward(input_ids (B, T), image, past_kv=None, use_cache=False) -> logits
    (B, T, V) (and the cache, whose tensors put the batch first), ``check_image(image, batch=None)`` and a config
    with vocab_size and max_len. ``bind`` and ``caption`` then come for free: ``Captioner`` here, chapter 10's
    ``vitlib.lstm_captioner.LSTMCaptioner``."""

    def bind(self, image: torch.Tensor) -> BoundCaptioner:
        """This captioner with ``image`` (B, S, d_image) fixed: what ``vitlib.decoding``'s loops can drive."""
        return BoundCaptioner(self, image)

    @torch.no_grad()
    def caption(self, image: torch.Tensor, tokenizer, max_new_tokens: int | None = None, decoding=greedy,
                **options) -> list[str]:
        """One caption per image (B, S, d_image), decoded from <bos> until <eos> (at most ``max_new_tokens``, by
        default max_len - 1) by ``decoding``: ``vitlib.decoding.greedy`` (default), ``sample`` or ``beam_search``
        (its best sequence), given ``options`` such as ``num_beams=4`` or ``logits_processor=...``."""
        if not callable(decoding):
            raise TypeError(f"decoding must be a function such as vitlib.decoding.greedy, got {describe(decoding)}")
        if not all(hasattr(tokenizer, name) for name in ("bos_id", "eos_id", "decode")):
            raise TypeError(f"tokenizer must have bos_id, eos_id and decode (a WordTokenizer), got "
                            f"{describe(tokenizer)}")
        bound = self.bind(image)
        max_new_tokens = self.config.max_len - 1 if max_new_tokens is None else max_new_tokens
        start = torch.full((image.shape[0], 1), tokenizer.bos_id, dtype=torch.long, device=image.device)   # (B, 1)
        out = decoding(bound, start, max_new_tokens, eos_token_id=tokenizer.eos_id, **options)
        ids = out[0] if isinstance(out, tuple) else out                       # beam_search: (sequences, scores)
        texts = []
        for row in ids[:, 1:].tolist():
            texts.append(tokenizer.decode(row[:row.index(tokenizer.eos_id)] if tokenizer.eos_id in row else row))
        return texts


@register_model(config_cls=CaptionerConfig)
class Captioner(CaptionDecoder):
    """(input_ids (B, T), image tokens (B, S, d_image)) -> next-token logits (B, T, vocab_size).

    The cache (``use_cache=True``) is a tuple with one ((k, v), (K_V, V_V)) per layer: the words' self-attention
    keys and values (B, H, P+T, Dh) and the image's (B, H, S, Dh). Every tensor in it has the batch first, so beam
    search's default reordering (``index_select`` on dim 0) is right for it."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        if not isinstance(config, CaptionerConfig):
            raise TypeError(f"Captioner expects a CaptionerConfig, got {describe(config)}")
        c = self.config = config
        self.token_emb = nn.Embedding(c.vocab_size, c.d_model)   # E, also the LM head
        self.pos_emb = nn.Embedding(c.max_len, c.d_model)        # P
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(CaptionerBlock(c) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: weights N(0, 0.02), biases 0; the three projections per block that write into
        the residual stream (W^O of both attentions, the FFN's W_2) N(0, 0.02 / sqrt(3 n_layers)), since the stream
        sums 3 n_layers of them."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.self_attn.out_proj, block.cross_attn.out_proj, block.ffn.fc2):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(3 * self.config.n_layers))

    def check_image(self, image, batch: int | None = None) -> None:
        """image must be finite tokens (B, S, d_image), B, S >= 1 (B = ``batch`` when given), like the weights."""
        d = self.config.d_image
        check_like(image, "image", self.norm.weight)
        if image.dim() != 3 or image.shape[-1] != d or 0 in image.shape[:2]:
            raise ValueError(f"image must be tokens (batch, S, {d}) with batch, S >= 1, got {describe(image)}")
        if batch is not None and image.shape[0] != batch:
            raise ValueError(f"image has {image.shape[0]} rows but input_ids has {batch}: one image per caption")
        if not torch.isfinite(image).all():   # a NaN in one token would spread to every word that reads it
            raise ValueError("image contains NaN or infinite values")

    def _check_cache(self, past_kv, batch: int) -> int:
        """P, the cached positions: past_kv holds one ((k, v), (K_V, V_V)) of 4-D tensors per layer, batch first."""
        n = len(self.blocks)
        ok = isinstance(past_kv, (tuple, list)) and len(past_kv) == n and all(
            isinstance(layer, (tuple, list)) and len(layer) == 2 and all(
                isinstance(kv, (tuple, list)) and len(kv) == 2 and all(
                    isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[0] == batch for t in kv)
                for kv in layer) for layer in past_kv)
        if not ok:
            got = f"{len(past_kv)} entries" if isinstance(past_kv, (tuple, list)) else describe(past_kv)
            raise ValueError(f"past_kv must be the cache an earlier call returned for these {batch} rows: one "
                             f"((k, v), (image k, image v)) of 4-D tensors per layer ({n}), got {got}")
        return past_kv[0][0][0].shape[2]

    def forward(self, input_ids, image=None, past_kv=None, use_cache: bool = False):
        """input_ids (B, T), image (B, S, d_image) -> logits (B, T, V); with ``use_cache`` also the new cache.

        With ``past_kv`` (positions 0..P-1, the image's keys and values included) pass ``image=None``: the image
        was projected at the first step and is not read again; the new tokens sit at positions P..P+T-1.
        """
        c = self.config
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
        check_token_ids(input_ids, c.vocab_size, self.token_emb.weight.device)
        B, T = input_ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"input_ids must have shape (batch, length) with batch, length >= 1, got {(B, T)}")
        if past_kv is None:
            if image is None:
                raise ValueError(f"pass the image tokens ({B}, S, {c.d_image}) that the captions describe")
            self.check_image(image, B)
            if c.image_pool == "mean":
                image = image.mean(dim=1, keepdim=True)                        # (B, 1, d_image)
            past_len = 0
        elif image is not None:
            raise ValueError("past_kv already holds the image's keys and values; pass image=None with past_kv")
        else:
            past_len = self._check_cache(past_kv, B)
        if past_len + T > c.max_len:
            raise ValueError(f"sequence length {past_len + T} exceeds max_len={c.max_len}")
        positions = torch.arange(past_len, past_len + T, device=input_ids.device)
        x = self.drop(self.token_emb(input_ids) + self.pos_emb(positions))     # (B, T, d_model): E[y_t] + P[t]
        cache = []
        for i, block in enumerate(self.blocks):
            words_kv, image_kv = (None, block.image_kv(image)) if past_kv is None else past_kv[i]
            out = block(x, image_kv, words_kv, use_cache)
            x, words_kv = out if use_cache else (out, None)
            cache.append((words_kv, image_kv))
        logits = F.linear(self.norm(x), self.token_emb.weight)                 # tied head: (B, T, V)
        return (logits, tuple(cache)) if use_cache else logits


class BoundCaptioner(nn.Module):
    """A captioner with its images fixed: forward(input_ids, past_kv=None, use_cache=False) -> logits (and cache),
    with the ``config.vocab_size`` and ``config.max_len`` that ``vitlib.decoding`` reads.

    Beam search sends K rows per image, batch-major (row b K + k is beam k of image b): given R = B K rows for
    B images, the forward repeats each image K times (``repeat_interleave(K, dim=0)``) at the first step. Later
    steps read the image's keys and values from the cache, whose rows beam search reorders with the default
    ``index_select`` on dim 0; a beam only ever inherits from a beam of its own image, so the rows stay right."""

    def __init__(self, captioner: CaptionDecoder, image: torch.Tensor):
        super().__init__()
        if not isinstance(captioner, CaptionDecoder):
            raise TypeError(f"captioner must be a CaptionDecoder (a Captioner, an LSTMCaptioner), got "
                            f"{describe(captioner)}")
        captioner.check_image(image)
        self.captioner, self.image, self.config = captioner, image, captioner.config
        self.training = captioner.training   # decoding restores this flag afterwards: the captioner's own

    def forward(self, input_ids, past_kv=None, use_cache: bool = False):
        if past_kv is not None:   # the cache holds the image
            return self.captioner(input_ids, None, past_kv, use_cache)
        check_token_ids(input_ids, self.config.vocab_size)
        B, R = self.image.shape[0], input_ids.shape[0]
        if R == 0 or R % B:
            raise ValueError(f"input_ids must have a multiple of the {B} bound images as rows (K per image), got "
                             f"{describe(input_ids)}")
        image = self.image if R == B else self.image.repeat_interleave(R // B, dim=0)   # (R, S, d_image)
        return self.captioner(input_ids, image, None, use_cache)
