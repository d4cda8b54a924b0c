"""Seed 001's captioner, made to run: image features, attention fusion, and an LSTM that writes the caption
(chapter 10; Show, Attend and Tell, Xu et al. 2015, in miniature).

    V = (v_1 .. v_S),  v_bar = (1/S) sum_s v_s           the frozen CLIP's patch tokens (B, S, d_image)
    h_0 = tanh(W_h v_bar),  c_0 = tanh(W_c v_bar)        the image as the initial state (seed 004's first strategy)
    z_t = sum_s alpha_s v_s,  alpha = softmax_s(v_s^T W h_(t-1) / sqrt(d_image))
                                                         seed 001's attention fusion: the state picks the patches
    (h_t, c_t) = LSTMCell([E[y_t] ; z_t], (h_(t-1), c_(t-1)))
    p(y_(t+1) | y_<=t, I) = softmax(W_o h_t + b_o)       seed 004's output layer

It is a ``CaptionDecoder``: forward(input_ids, image, past_kv, use_cache) with past_kv = (h, c, V), each batch
first, so the loops of ``vitlib.decoding`` (greedy, sample, beam_search) drive it through ``bind`` exactly as they
drive the transformer ``Captioner``. Unlike the transformer, it reads one word per step even when teacher-forced:
training runs T sequential LSTM steps, not one parallel pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .captioner import CaptionDecoder
from .checks import check_positive_ints, check_token_ids, describe
from .fusion import AttentionFusion
from .zoo import register_model

__all__ = ["LSTMCaptionerConfig", "LSTMCaptioner"]


@dataclass
class LSTMCaptionerConfig:
    """Sizes: ``d_embed`` the word embeddings, ``d_hidden`` the LSTM state; ``max_len`` bounds a caption (<bos> and
    <eos> included), as for the transformer, although an LSTM has no positions to run out of."""

    vocab_size: int
    max_len: int
    d_image: int
    d_embed: int = 64
    d_hidden: int = 128

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "max_len", "d_image", "d_embed", "d_hidden"))


@register_model(config_cls=LSTMCaptionerConfig)
class LSTMCaptioner(CaptionDecoder):
    """(input_ids (B, T), image tokens (B, S, d_image)) -> next-token logits (B, T, vocab_size), one LSTM step per
    word; the cache (``use_cache=True``) is (h, c, V): the state after the last word and the image."""

    def __init__(self, config: LSTMCaptionerConfig):
        super().__init__()
        if not isinstance(config, LSTMCaptionerConfig):
            raise TypeError(f"LSTMCaptioner expects an LSTMCaptionerConfig, got {describe(config)}")
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_embed)                 # E
        self.init_h = nn.Linear(c.d_image, c.d_hidden)                     # W_h
        self.init_c = nn.Linear(c.d_image, c.d_hidden)                     # W_c
        self.fusion = AttentionFusion(c.d_image, c.d_hidden)               # W: the state queries the patches
        self.cell = nn.LSTMCell(c.d_embed + c.d_image, c.d_hidden)
        self.out = nn.Linear(c.d_hidden, c.vocab_size)                     # W_o, b_o

    def check_image(self, image, batch: int | None = None) -> None:
        """image must be finite tokens (B, S, d_image), B, S >= 1 (B = ``batch`` when given), like the weights."""
        d = self.config.d_image
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[-1] != d or 0 in image.shape[:2]:
            raise ValueError(f"image must be tokens (batch, S, {d}) with batch, S >= 1, got {describe(image)}")
        if batch is not None and image.shape[0] != batch:
            raise ValueError(f"image has {image.shape[0]} rows but input_ids has {batch}: one image per caption")
        self.fusion(image, torch.zeros(image.shape[0], self.config.d_hidden, dtype=image.dtype,
                                       device=image.device))   # dtype, device, NaN: the fusion's own checks

    def init_state(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0), each (B, d_hidden), from the mean image token."""
        v_bar = image.mean(dim=1)                                          # (B, d_image)
        return torch.tanh(self.init_h(v_bar)), torch.tanh(self.init_c(v_bar))

    def step(self, y: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], image: torch.Tensor):
        """One word y (B,) -> (logits (B, V) for the next word, the new (h, c))."""
        h, c = state
        z = self.fusion(image, h)                                          # (B, d_image): where h looks
        h, c = self.cell(torch.cat([self.embed(y), z], dim=-1), (h, c))
        return self.out(h), (h, c)

    def forward(self, input_ids, image=None, past_kv=None, use_cache: bool = False):
        """input_ids (B, T) -> logits (B, T, V), with ``use_cache`` also (h, c, V); with ``past_kv`` pass
        ``image=None``: the cache holds the image and the state after the earlier words."""
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
        check_token_ids(input_ids, self.config.vocab_size, self.out.weight.device)
        B, T = input_ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"input_ids must have shape (batch, length) with batch, length >= 1, got {(B, T)}")
        if past_kv is None:
            if image is None:
                raise ValueError(f"pass the image tokens ({B}, S, {self.config.d_image}) that the captions describe")
            self.check_image(image, B)
            state = self.init_state(image)
        elif image is not None:
            raise ValueError("past_kv already holds the image; pass image=None with past_kv")
        else:
            if not (isinstance(past_kv, (tuple, list)) and len(past_kv) == 3 and all(
                    isinstance(t, torch.Tensor) and t.shape[0] == B for t in past_kv)):
                raise ValueError(f"past_kv must be the (h, c, image) an earlier call returned for these {B} rows, "
                                 f"got {describe(past_kv)}")
            *state, image = past_kv
        logits = []
        for t in range(T):
            step_logits, state = self.step(input_ids[:, t], state, image)
            logits.append(step_logits)
        logits = torch.stack(logits, dim=1)                                # (B, T, V)
        return (logits, (*state, image)) if use_cache else logits
