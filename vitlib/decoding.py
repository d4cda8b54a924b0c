"""Decoding: a language model's next-token scores -> a continuation, one token at a time (chapter 03; chapter 10
adds beam search, top-k, top-p and vision-guided decoding).

    s_t = f(x_<=t, logits(x_<=t)[t]),     x_(t+1) = argmax_v s_t[v]       until <eos> or max_new_tokens

``generate`` runs this loop for any model whose forward takes (input_ids, past_kv=..., use_cache=...) and returns
next-token logits (and the new cache), as ``vitlib.transformer.GPT`` does. A logits processor f has transformers'
signature ``(input_ids (B, t), scores (B, V)) -> scores (B, V)``: ``TemperatureProcessor`` divides by tau;
``SampleProcessor`` draws x ~ softmax(s / tau) and keeps only that token, so that the argmax picks it and greedy
decoding becomes sampling. ``LogitsProcessorList`` applies several in order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .checks import check_id, check_int, check_number, check_token_ids, describe

__all__ = ["generate", "LogitsProcessorList", "TemperatureProcessor", "SampleProcessor"]

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # (input_ids, scores) -> scores


class LogitsProcessorList(list):
    """Processors applied in order, s <- f_n(ids, ... f_1(ids, s)), as transformers' ``LogitsProcessorList``."""

    def __init__(self, processors=()):
        super().__init__(processors)
        for i, processor in enumerate(self):
            if not callable(processor):
                raise TypeError(f"processor {i} must be a callable (input_ids, scores) -> scores, got "
                                f"{describe(processor)}")

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


class TemperatureProcessor:
    """s <- s / tau: tau < 1 sharpens softmax(s), tau > 1 flattens it (transformers' ``TemperatureLogitsWarper``).
    The argmax stays where it was: temperature matters only to a sampler after it."""

    def __init__(self, temperature: float):
        check_number(temperature, "temperature", 0.0, low_open=True)
        self.temperature = temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class SampleProcessor:
    """A logits processor that draws the next token from softmax(scores / temperature) with a seeded (CPU)
    generator and returns scores that keep only the drawn token, so that ``generate``'s argmax picks it."""

    def __init__(self, generator: torch.Generator, temperature: float = 1.0):
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise TypeError(f"generator must be a CPU torch.Generator (the draws run on the CPU, so that every device "
                            f"gives the same tokens), got {describe(generator)}")
        check_number(temperature, "temperature", 0.0, low_open=True)
        self.generator, self.temperature = generator, temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = (scores.float() / self.temperature).softmax(dim=-1).cpu()  # (B, V)
        drawn = torch.multinomial(probs, 1, generator=self.generator)      # (B, 1)
        only_drawn = torch.full_like(scores, float("-inf"))                 # (B, V)
        return only_drawn.scatter(1, drawn.to(scores.device), 0.0)


def _sizes(model) -> tuple[int, int]:
    """(vocab_size, max_len) from the model's config: what bounds the ids and the length before the first step."""
    config = getattr(model, "config", None)
    sizes = [getattr(config, name, None) for name in ("vocab_size", "max_len")]
    if not isinstance(model, nn.Module) or not all(isinstance(n, int) and n > 0 for n in sizes):
        raise TypeError(f"model must be an nn.Module whose config gives vocab_size and max_len, like "
                        f"vitlib.transformer.GPT, got {describe(model)}")
    return sizes[0], sizes[1]


def _check_scores(scores, shape: torch.Size, done: torch.Tensor) -> torch.Tensor:
    """A logits processor's output: (B, V) like its input (a wider one would let argmax pick an id >= V), and for
    each unfinished row a number argmax can choose by (NaN, or every token at -inf, picks an arbitrary id)."""
    if not isinstance(scores, torch.Tensor) or scores.shape != shape:
        raise ValueError(f"logits_processor must return scores of shape {tuple(shape)} (batch, vocab_size), got "
                         f"{describe(scores)}")
    if ((scores.isnan().any(dim=-1) | scores.isneginf().all(dim=-1)) & ~done).any():
        raise ValueError("logits_processor returned NaN scores, or -inf for every token, in some row: argmax would "
                         "pick an arbitrary token")
    return scores


@torch.no_grad()
def generate(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, use_cache: bool = True,
             logits_processor: LogitsProcessor | None = None, eos_token_id: int | None = None) -> torch.Tensor:
    """Extend input_ids (B, T) by up to ``max_new_tokens`` tokens; returns (B, T + new), in eval mode throughout.

    ``model``: an nn.Module with ``config.vocab_size`` and ``config.max_len`` whose forward maps (input_ids (B, t),
    past_kv=cache or None, use_cache=bool) to logits (B, t, V), and with ``use_cache`` to (logits, new cache).
    Each step picks the argmax of the last position's scores, after ``logits_processor(ids, scores)`` if given. A
    sequence that produced ``eos_token_id`` continues with eos; generation stops early when every sequence has.
    With ``use_cache`` each step feeds only the newest token and reuses the keys and values of the earlier ones;
    without it, the whole sequence is recomputed at every step. Both give the same tokens.
    """
    vocab_size, max_len = _sizes(model)
    weight = next(model.parameters(), None)
    check_token_ids(input_ids, vocab_size, None if weight is None else weight.device)
    if 0 in input_ids.shape:   # an empty batch or prompt: nothing to continue
        raise ValueError(f"input_ids must have shape (batch, length) with batch, length >= 1, got "
                         f"{tuple(input_ids.shape)}")
    check_int(max_new_tokens, "max_new_tokens", minimum=0, maximum=None)
    check_id(eos_token_id, "eos_token_id", vocab_size, optional=True)
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
    if logits_processor is not None and not callable(logits_processor):
        raise TypeError(f"logits_processor must be a callable (input_ids, scores) -> scores, got "
                        f"{describe(logits_processor)}")
    if input_ids.shape[1] + max_new_tokens > max_len:
        raise ValueError(f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"max_len={max_len}")
    was_training = model.training
    model.eval()
    try:
        ids, past = input_ids, None
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)   # (B,): has produced eos
        for _ in range(max_new_tokens):
            if use_cache:
                logits, past = model(ids if past is None else ids[:, -1:], past_kv=past, use_cache=True)
            else:
                logits = model(ids)
            scores = logits[:, -1]  # (B, V): the next token's scores
            if logits_processor is not None:
                scores = _check_scores(logits_processor(ids, scores), scores.shape, done)
            next_id = scores.argmax(dim=-1)  # (B,)
            if eos_token_id is not None:
                next_id = next_id.masked_fill(done, eos_token_id)
                done = done | (next_id == eos_token_id)
            ids = torch.cat([ids, next_id[:, None]], dim=1)  # (B, t + 1)
            if eos_token_id is not None and done.all():
                break
    finally:
        model.train(was_training)
    return ids
