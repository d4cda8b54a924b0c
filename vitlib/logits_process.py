"""Logits processors: f(input_ids (B, t), scores (B, V)) -> scores (B, V), transformers' signature, each equal to
its transformers namesake (chapter 03 builds temperature; chapter 10 the filters).

    temperature      s <- s / tau
    top-k            keep the k highest scores (ties at the k-th kept), the rest -> -inf
    top-p (nucleus)  keep the smallest set of highest-probability tokens whose probabilities sum to >= p
    min-p            keep tokens with p_v >= min_p * max_v p_v
    repetition       a seen token's score s -> s / penalty if s > 0, else s * penalty

``vitlib.decoding``'s loops apply them (and re-export them); they also plug into transformers' ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import check_int, check_number, check_token_ids, describe

__all__ = ["LogitsProcessor", "LogitsProcessorList", "TemperatureProcessor", "TopKProcessor", "TopPProcessor",
           "MinPProcessor", "RepetitionPenaltyProcessor", "SampleProcessor"]

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


def _check_processor_scores(scores) -> None:
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point() or scores.dim() != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be a float tensor (batch, vocab_size) with batch, vocab_size >= 1, got "
                         f"{describe(scores)}")


class TemperatureProcessor:
    """s <- s / tau: tau < 1 sharpens softmax(s), tau > 1 flattens it (transformers' ``TemperatureLogitsWarper``).
    The argmax stays where it was: temperature matters only to a sampler after it."""

    def __init__(self, temperature: float):
        check_number(temperature, "temperature", 0.0, low_open=True)
        self.temperature = temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _check_processor_scores(scores)
        return scores / self.temperature


class TopKProcessor:
    """s_v <- -inf unless s_v >= the k-th largest score, k = max(top_k, min_tokens_to_keep) (transformers'
    ``TopKLogitsWarper``): ties with the k-th score are all kept; k >= V keeps everything."""

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1):
        check_int(top_k, "top_k", maximum=None)
        check_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.top_k = max(top_k, min_tokens_to_keep)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _check_processor_scores(scores)
        kth = scores.topk(min(self.top_k, scores.shape[-1])).values[..., -1:]   # (B, 1): the k-th largest
        return scores.masked_fill(scores < kth, float("-inf"))


class TopPProcessor:
    """Nucleus filtering (transformers' ``TopPLogitsWarper``): sort p = softmax(s) ascending, drop each token whose
    cumulative sum sum_(j <= i) p_(j) <= 1 - top_p (what remains is the smallest set with mass >= top_p), never the
    ``min_tokens_to_keep`` most probable; dropped tokens get -inf. top_p = 1 keeps everything."""

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1):
        check_number(top_p, "top_p", 0.0, 1.0, low_open=True)
        check_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.top_p, self.min_tokens_to_keep = float(top_p), min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _check_processor_scores(scores)
        sorted_scores, order = torch.sort(scores, descending=False)            # (B, V), least probable first
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)              # (B, V)
        drop_sorted = cumulative <= 1 - self.top_p
        drop_sorted[..., -self.min_tokens_to_keep:] = False                    # the most probable always stay
        drop = drop_sorted.scatter(1, order, drop_sorted)                      # (B, V), back in vocabulary order
        return scores.masked_fill(drop, float("-inf"))


class MinPProcessor:
    """s_v <- -inf where p_v < min_p * max_u p_u, p = softmax(s), except the ``min_tokens_to_keep`` most probable
    (transformers' ``MinPLogitsWarper``): the cut rises with the model's confidence."""

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1):
        check_number(min_p, "min_p", 0.0, 1.0)
        check_int(min_tokens_to_keep, "min_tokens_to_keep")
        self.min_p, self.min_tokens_to_keep = min_p, min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _check_processor_scores(scores)
        probs = scores.softmax(dim=-1)                                          # (B, V)
        drop = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        kept = probs.topk(min(self.min_tokens_to_keep, probs.shape[-1]), dim=-1).indices   # (B, k)
        return scores.masked_fill(drop.scatter(-1, kept, False), float("-inf"))


class RepetitionPenaltyProcessor:
    """For every token v already in input_ids: s_v <- s_v / penalty if s_v >= 0, else s_v * penalty (CTRL, Keskar
    et al. 2019; transformers' ``RepetitionPenaltyLogitsProcessor``). penalty > 1 discourages repeats, < 1 favours
    them; each token is penalised once, however often it occurred."""

    def __init__(self, penalty: float):
        check_number(penalty, "penalty", 0.0, low_open=True)
        self.penalty = penalty

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        _check_processor_scores(scores)
        check_token_ids(input_ids, scores.shape[-1], scores.device)
        if input_ids.shape[0] != scores.shape[0]:
            raise ValueError(f"input_ids and scores must have the same batch size, got {input_ids.shape[0]} and "
                             f"{scores.shape[0]}")
        seen = scores.gather(1, input_ids)                                      # (B, t): s at the seen tokens
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, input_ids, seen)


class SampleProcessor:
    """A logits processor that draws the next token from softmax(scores / temperature) with a seeded (CPU)
    generator and returns scores that keep only the drawn token, so that greedy's argmax picks it (chapter 03;
    ``sample`` is the loop that draws itself)."""

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
