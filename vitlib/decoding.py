"""Decoding: a language model's next-token scores -> a continuation, one token at a time (chapter 03; chapter 10
adds sampling filters and beam search).

    s_t = f(x_<=t, logits(x_<=t)[t])                    f: logits processors (temperature, top-k, top-p, ...)
    greedy:  x_(t+1) = argmax_v s_t[v]          sample:  x_(t+1) ~ softmax(s_t)          until <eos> or max_new_tokens
    beam search keeps the K prefixes of highest sum_i log p(x_i | x_<i) and returns the finished hypothesis y of
    highest score(y) = sum_i log p(y_i | y_<i) / |y| ** length_penalty,    |y| = generated tokens, <eos> included

All three loops run any model whose forward takes (input_ids, past_kv=..., use_cache=...) and returns next-token
logits (and the new cache), as ``vitlib.transformer.GPT`` does, and reproduce transformers' ``generate``: the same
tokens, and for beam search the same ``sequences_scores``. A logits processor has transformers' signature
``(input_ids (B, t), scores (B, V)) -> scores (B, V)``; each processor here equals its transformers namesake.
The processors live in ``vitlib.logits_process`` (re-exported here); ``LogitsProcessorList`` applies several in
order. ``generate`` is ``greedy`` under its chapter-03 name.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_id, check_int, check_number, check_token_ids, describe
from .logits_process import (LogitsProcessor, LogitsProcessorList, MinPProcessor, RepetitionPenaltyProcessor,
                             SampleProcessor, TemperatureProcessor, TopKProcessor, TopPProcessor)

__all__ = ["greedy", "sample", "beam_search", "generate", "LogitsProcessorList", "TemperatureProcessor",
           "TopKProcessor", "TopPProcessor", "MinPProcessor", "RepetitionPenaltyProcessor", "SampleProcessor"]

NEG = -1.0e9   # transformers' "impossible" beam score: finite, so that sums and comparisons stay defined


def _check_loop(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache, min_new=0) -> int:
    """The checks every loop shares, before any forward pass; returns the vocabulary size V."""
    config = getattr(model, "config", None)
    vocab_size, max_len = [getattr(config, name, None) for name in ("vocab_size", "max_len")]
    if not isinstance(model, nn.Module) or not all(isinstance(n, int) and n > 0 for n in (vocab_size, max_len)):
        raise TypeError(f"model must be an nn.Module whose config gives vocab_size and max_len, like "
                        f"vitlib.transformer.GPT, got {describe(model)}")
    weight = next(model.parameters(), None)
    check_token_ids(input_ids, vocab_size, None if weight is None else weight.device)
    if 0 in input_ids.shape:   # an empty batch or prompt: nothing to continue
        raise ValueError(f"input_ids must have shape (batch, length) with batch, length >= 1, got "
                         f"{tuple(input_ids.shape)}")
    check_int(max_new_tokens, "max_new_tokens", minimum=min_new, maximum=None)
    check_id(eos_token_id, "eos_token_id", vocab_size, optional=True)
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
    if logits_processor is not None and not callable(logits_processor):
        raise TypeError(f"logits_processor must be a callable (input_ids, scores) -> scores, got "
                        f"{describe(logits_processor)}")
    if input_ids.shape[1] + max_new_tokens > max_len:
        raise ValueError(f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"max_len={max_len}")
    return vocab_size


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


@contextmanager
def _evaluating(model: nn.Module):
    """Eval mode (no dropout) while decoding; the caller's mode is restored even when a processor raises."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _next_scores(model, ids: torch.Tensor, past, use_cache: bool):
    """The last position's scores (B, V), in float32 as transformers computes them, and the model's new cache: with
    a cache only the newest token goes in, without one the whole sequence is recomputed."""
    if use_cache:
        logits, past = model(ids if past is None else ids[:, -1:], past_kv=past, use_cache=True)
    else:
        logits = model(ids)
    return logits[:, -1].float(), past


@torch.no_grad()
def _decode(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache, choose) -> torch.Tensor:
    """The loop greedy and sample share; ``choose`` maps the processed scores (B, V) to the next ids (B,)."""
    with _evaluating(model):
        ids, past = input_ids, None
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)   # (B,): has produced eos
        for _ in range(max_new_tokens):
            scores, past = _next_scores(model, ids, past, use_cache)               # (B, V)
            if logits_processor is not None:
                scores = _check_scores(logits_processor(ids, scores), scores.shape, done)
            next_id = choose(scores)                                               # (B,), drawn for every row
            if eos_token_id is not None:                                           # a finished row repeats eos
                next_id = next_id.masked_fill(done, eos_token_id)
                done = done | (next_id == eos_token_id)
            ids = torch.cat([ids, next_id[:, None]], dim=1)                        # (B, t + 1)
            if eos_token_id is not None and done.all():
                break
    return ids


def greedy(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, eos_token_id: int | None = None,
           logits_processor: LogitsProcessor | None = None, use_cache: bool = True) -> torch.Tensor:
    """Extend input_ids (B, T) by up to ``max_new_tokens`` argmax tokens; returns (B, T + new), in eval mode.

    ``model``: an nn.Module with ``config.vocab_size`` and ``config.max_len`` whose forward maps (input_ids (B, t),
    past_kv=cache or None, use_cache=bool) to logits (B, t, V), and with ``use_cache`` to (logits, new cache).
    Each step picks the argmax of the last position's scores, after ``logits_processor(ids, scores)`` if given. A
    sequence that produced ``eos_token_id`` continues with eos; generation stops early when every sequence has.
    With or without ``use_cache``, the same tokens (and those of transformers' ``generate(do_sample=False)``).
    """
    _check_loop(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache)
    return _decode(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache,
                   lambda scores: scores.argmax(dim=-1))


def generate(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, use_cache: bool = True,
             logits_processor: LogitsProcessor | None = None, eos_token_id: int | None = None) -> torch.Tensor:
    """``greedy`` with chapter 03's argument order (model, input_ids, max_new_tokens, use_cache, logits_processor,
    eos_token_id), kept for the callers written then."""
    return greedy(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache)


def sample(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, generator: torch.Generator | None = None,
           logits_processor: LogitsProcessor | None = None, eos_token_id: int | None = None,
           use_cache: bool = True) -> torch.Tensor:
    """``greedy``'s loop with x_(t+1) ~ softmax(s_t) drawn by ``torch.multinomial`` instead of the argmax.

    Without ``generator`` the draws come from PyTorch's global generator exactly as transformers' ``generate(
    do_sample=True)`` takes them, so that the same ``torch.manual_seed`` gives the same tokens. With one, the draws
    use it (on its device) and leave the global state alone. Filters (top-k, top-p, temperature) go in
    ``logits_processor``, in transformers' order: temperature, top-k, top-p, min-p.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    _check_loop(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache)

    def draw(scores: torch.Tensor) -> torch.Tensor:
        probs = scores.softmax(dim=-1)                                         # (B, V) float32
        if generator is None:
            return torch.multinomial(probs, num_samples=1).squeeze(1)          # (B,)
        drawn = torch.multinomial(probs.to(generator.device), num_samples=1, generator=generator)   # (B, 1)
        return drawn.squeeze(1).to(probs.device)

    return _decode(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache, draw)


def _reorder_cache(model, past, beam_idx: torch.Tensor):
    """The cache rows of the beams that go on: ``model.reorder_cache(past, beam_idx)`` if the model defines it,
    else every tensor in the nest of tuples and lists indexed along dim 0 (the batch, as in vitlib's (k, v))."""
    if hasattr(model, "reorder_cache"):
        return model.reorder_cache(past, beam_idx)
    if isinstance(past, torch.Tensor):
        return past.index_select(0, beam_idx)
    if isinstance(past, (tuple, list)):
        return type(past)(_reorder_cache(model, p, beam_idx) for p in past)
    return past   # a number or None: nothing per row


def _gather_beams(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) -> (B, M, ...): for each prompt b, its rows index[b] (M of them) of its N beams."""
    return x.gather(1, index.view(*index.shape, *(1,) * (x.dim() - 2)).expand(*index.shape, *x.shape[2:]))


@torch.no_grad()
def beam_search(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, num_beams: int,
                length_penalty: float = 1.0, eos_token_id: int | None = None,
                logits_processor: LogitsProcessor | None = None, use_cache: bool = True):
    """The best of ``num_beams`` hypotheses per prompt: (sequences (B, T + new), sequences_scores (B,)), as
    transformers' ``generate(num_beams=K, do_sample=False, early_stopping=False)``.

    Each step scores all K * V one-token extensions of the K running beams by their summed log-probabilities
    (log_softmax, then ``logits_processor`` on the log-probabilities) and keeps the best 2K; of those, the ones in
    the top K that end (eos, or max_new_tokens reached) become finished hypotheses with score sum / n **
    length_penalty, n their generated tokens with the eos, and the best K that do not end run on. At most K
    finished hypotheses are kept per prompt; a prompt stops taking new ones once its best running beam, scored at
    its current length, cannot beat the worst of them (transformers' heuristic). Shorter winners are padded with
    eos. Rows are batch-major (row b K + k is beam k of prompt b): a model that binds per-prompt inputs (an image)
    repeats them with ``repeat_interleave(K, dim=0)``. The cache follows the beams: ``model.reorder_cache(past,
    beam_idx)`` if the model defines it, else ``index_select`` along dim 0 of every tensor in it.
    """
    V = _check_loop(model, input_ids, max_new_tokens, eos_token_id, logits_processor, use_cache, min_new=1)
    check_int(num_beams, "num_beams")
    check_number(length_penalty, "length_penalty")
    B, P = input_ids.shape
    K, L, keep = num_beams, input_ids.shape[1] + max_new_tokens, 2 * num_beams   # keep: (1 + one eos id) K
    dev = input_ids.device
    running = input_ids[:, None, :].expand(B, K, P)                   # (B, K, t): all K beams start as the prompt
    running_scores = torch.full((B, K), NEG, device=dev)             # (B, K): sum of log p per running beam
    running_scores[:, 0] = 0.0                                        # only beam 0 extends at first (the K are equal)
    fill = 0 if eos_token_id is None else eos_token_id               # pads hypotheses that ended early
    finished = input_ids.new_full((B, K, L), fill)                   # (B, K, L)
    finished_scores = torch.full((B, K), NEG, device=dev)            # (B, K): sum / n ** length_penalty
    finished_lengths = torch.zeros((B, K), dtype=torch.long, device=dev)
    is_finished = torch.zeros((B, K), dtype=torch.bool, device=dev)
    improvable = torch.ones((B, 1), dtype=torch.bool, device=dev)   # may a running beam still beat a finished one?
    in_top_k = torch.arange(keep, device=dev) < K                    # (2K,): only these may finish
    none_done = torch.zeros(B * K, dtype=torch.bool, device=dev)    # every running beam needs a valid score
    past = None
    with _evaluating(model):
        for t in range(max_new_tokens):                               # t tokens generated so far
            flat = running.reshape(B * K, P + t)                      # (B K, P + t)
            logits, past = _next_scores(model, flat, past, use_cache)
            log_probs = logits.log_softmax(dim=-1)                    # (B K, V)
            if logits_processor is not None:
                log_probs = _check_scores(logits_processor(flat, log_probs), log_probs.shape, none_done)
            total = (log_probs.view(B, K, V) + running_scores[:, :, None]).view(B, K * V)   # (B, K V)
            top_scores, top_index = total.topk(keep)                  # (B, 2K): the best extensions of any beam
            beam, token = top_index // V, top_index % V               # (B, 2K) each
            candidates = torch.cat([_gather_beams(running, beam), token[:, :, None]], dim=2)   # (B, 2K, P + t + 1)
            ends = torch.full_like(token, t + 1 == max_new_tokens, dtype=torch.bool)   # (B, 2K): at max length
            if eos_token_id is not None:
                ends |= token == eos_token_id

            # the K best candidates that do not end run on
            alive_scores = top_scores + ends.float() * NEG                                       # (B, 2K)
            going_on = alive_scores.topk(K).indices                                              # (B, K)
            running = _gather_beams(candidates, going_on)                                        # (B, K, P + t + 1)
            running_scores = _gather_beams(alive_scores, going_on)
            if use_cache:   # row b K + k of the cache now holds beam k of prompt b's parent
                parent = _gather_beams(beam, going_on) + torch.arange(B, device=dev)[:, None] * K   # (B, K)
                past = _reorder_cache(model, past, parent.view(-1))

            # the finished hypotheses: the best K of the kept ones and the new ones that end in the top K
            just_finished = ends & in_top_k
            new_scores = torch.where(just_finished & improvable, top_scores / (t + 1) ** length_penalty, NEG)
            merged_scores = torch.cat([finished_scores, new_scores], dim=1)                      # (B, 3K)
            best = merged_scores.topk(K).indices                                                 # (B, K)
            padded = F.pad(candidates, (0, L - P - t - 1), value=fill)                          # (B, 2K, L)
            finished = _gather_beams(torch.cat([finished, padded], dim=1), best)                # (B, K, L)
            finished_scores = _gather_beams(merged_scores, best)
            finished_lengths = _gather_beams(torch.cat([finished_lengths, torch.full_like(token, t + 1)], 1), best)
            is_finished = _gather_beams(torch.cat([is_finished, just_finished], dim=1), best)

            best_running = running_scores[:, :1] / (t + 1) ** length_penalty                   # (B, 1)
            worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)
            improvable = improvable & (best_running > worst_finished).any(dim=1, keepdim=True)
            if not improvable.any() or ends.all():
                break
    n = int(finished_lengths[:, 0].max())
    return finished[:, 0, :P + n], finished_scores[:, 0]
