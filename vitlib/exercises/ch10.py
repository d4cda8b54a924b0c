"""Checkers for chapter 10's exercises: nucleus (top-p) filtering, one step of beam search, CHAIR, and visual
contrastive decoding's logits. Each compares your answer with ``vitlib.logits_process``, ``vitlib.decoding``,
``vitlib.metrics`` and ``vitlib.guided_decoding`` and names the usual mistakes."""

from __future__ import annotations

import math

import torch

from . import Case, check, function_name, mismatch

NEG_INF = float("-inf")


def _differing(expected, mistakes: dict) -> dict:
    """The mistakes whose answer differs from the right one on this case (the others cannot be told apart)."""
    return {what: wrong for what, wrong in mistakes.items() if mismatch(wrong, expected) is not None}


# ----- top-p -----------------------------------------------------------------------------------------------------
def _outside_nucleus(scores: torch.Tensor, top_p: float, strict: bool = False, dim: int = -1) -> torch.Tensor:
    """transformers' rule: sort ascending, drop tokens whose cumulative probability is <= 1 - top_p, keep the top."""
    sorted_scores, order = scores.sort(dim=dim)                                  # (B, V), least probable first
    cumulative = sorted_scores.softmax(dim).cumsum(dim)                          # (B, V)
    drop = cumulative < 1 - top_p if strict else cumulative <= 1 - top_p
    drop.select(dim, -1).fill_(False)                                            # the most probable always stays
    return drop.scatter(dim, order, drop)                                        # (B, V), vocabulary order


def _dyadic(*rows) -> torch.Tensor:
    """Logits -k ln 2 whose softmax is exactly 2^-k / sum: ties and a cumulative sum that meets 1 - top_p exactly."""
    return torch.tensor(rows, dtype=torch.float32) * -math.log(2) + 0.0         # (B, V); + 0.0: no -0. shown


def check_top_p_filter(top_p_filter) -> bool:
    """``top_p_filter(scores, top_p)``: logits (B, V) -> the same logits with every token outside the nucleus set
    to -inf, as ``vitlib.logits_process.TopPProcessor`` (transformers' ``TopPLogitsWarper``): sort p = softmax(s)
    ascending and remove each token whose cumulative sum sum_(j <= i) p_(j) <= 1 - top_p, never the most probable."""
    cases = []
    for i, (B, V, top_p) in enumerate(((3, 10, 0.9), (2, 8, 0.5), (2, 6, 0.01))):
        cases.append((torch.randn(B, V, generator=torch.Generator().manual_seed(100 + i)) * 2, top_p,
                      f"random logits B={B}, V={V}, top_p={top_p}"))
    cases.append((_dyadic([2, 0, 4, 1, 3, 4], [3, 1, 3, 0, 3, 3]), 0.5,
                  "tied probabilities, a cumulative sum of exactly 1 - top_p = 0.5"))
    cases.append((_dyadic([1, 0, 2, 0, 2, 0]), 0.75, "three tokens tied at the top, exactly 1 - top_p = 0.25"))
    checked = []
    for scores, top_p, label in cases:
        drop = _outside_nucleus(scores, top_p)
        expected = scores.masked_fill(drop, NEG_INF)
        sorted_desc, order = scores.sort(dim=-1, descending=True)                # (B, V), most probable first
        beyond = sorted_desc.softmax(-1).cumsum(-1) > top_p
        beyond[:, 0] = False
        checked.append(Case(args=(scores, top_p), expected=expected, label=label, mistakes=_differing(expected, {
            "a strict < at the border keeps a token whose cumulative probability is exactly 1 - top_p; it goes (<=)":
                scores.masked_fill(_outside_nucleus(scores, top_p, strict=True), NEG_INF),
            "the token that crosses top_p dropped: the nucleus is the smallest set whose mass reaches top_p, "
            "so it includes that token": scores.masked_fill(beyond.scatter(1, order, beyond), NEG_INF),
            "probabilities returned: the filter returns the logits, with -inf for the removed tokens":
                scores.softmax(-1).masked_fill(drop, 0.0),
            "removed tokens set to 0: a logit of 0 is still a likely token after the softmax; use -inf":
                scores.masked_fill(drop, 0.0),
            "sorted along dim 0 (the batch) instead of the vocabulary (dim -1)":
                scores.masked_fill(_outside_nucleus(scores, top_p, dim=0), NEG_INF)})))
    return check(top_p_filter, checked, name=function_name(top_p_filter, "top_p_filter"))


# ----- one beam-search step --------------------------------------------------------------------------------------
def _top_extensions(total: torch.Tensor, num_beams: int):
    """The num_beams best entries of total (K, V): (values, flat indices k V + v), best first."""
    return total.reshape(-1).topk(num_beams)                                     # (n,), over the K V extensions


def check_beam_step(beam_step) -> bool:
    """``beam_step(beam_scores, log_probs, num_beams)``: running sums of log-probabilities beam_scores (K,) of K live
    beams, their next-token log-probabilities log_probs (K, V) -> (new_scores, beam_index, token), each
    (num_beams,): the num_beams best of all K V extensions by beam_scores[k] + log_probs[k, v], best first, as
    ``vitlib.decoding.beam_search`` ranks them (new_scores float, beam_index and token int64)."""
    cases = []
    for i, (K, V, n) in enumerate(((1, 7, 3), (3, 6, 3), (4, 5, 4), (2, 9, 5))):
        g = torch.Generator().manual_seed(110 + i)
        beam_scores = -(torch.rand(K, generator=g) * 4).sort().values                # (K,), best first
        log_probs = (torch.randn(K, V, generator=g) * 2).log_softmax(dim=-1)         # (K, V)
        top, flat = _top_extensions(beam_scores[:, None] + log_probs, n)
        expected = (top, flat // V, flat % V)
        best, best_token = log_probs.max(dim=1)                                      # (K,) each
        own = beam_scores + best                                                     # (K,)
        by_own = own.argsort(descending=True)[:n]
        last, last_flat = _top_extensions(log_probs, n)
        p_top, p_flat = _top_extensions(beam_scores.exp()[:, None] + log_probs.exp(), n)
        cases.append(Case(args=(beam_scores, log_probs, n), expected=expected, label=f"K={K}, V={V}, num_beams={n}",
                          mistakes=_differing(expected, {
                              "each beam extended by its own best token: the best extensions may all come from one "
                              "beam": (own[by_own], by_own, best_token[by_own]),
                              "the beam scores not added: rank by beam_scores[k] + log_probs[k, v], the whole "
                              "sequence's log-probability": (last, last_flat // V, last_flat % V),
                              "probabilities added: a sequence's probability is a product, so add "
                              "log-probabilities": (p_top, p_flat // V, p_flat % V),
                              "beam and token swapped: for the flat index k V + v, beam = flat // V and "
                              "token = flat % V": (top, flat % V, flat // V),
                              "flat index divided by K: each beam has V extensions, so divide by V":
                                  (top, flat // K, flat % K)})))
    return check(beam_step, cases, name=function_name(beam_step, "beam_step"))


# ----- CHAIR -----------------------------------------------------------------------------------------------------
RC, BS, GT, YC, RS, BT = ("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle"), \
    ("red", "square"), ("blue", "triangle")


def _chair(mentioned, present, absent=lambda m, p: m - p):
    hallucinated = [absent(m, p) for m, p in zip(mentioned, present)]
    return sum(map(len, hallucinated)) / sum(map(len, mentioned)), sum(map(bool, hallucinated)) / len(mentioned)


def check_chair(chair_scores) -> bool:
    """``chair_scores(mentioned, present)``: per caption the set of (colour, shape) pairs it mentions and the set
    its scene holds (two lists of sets) -> (CHAIR_i, CHAIR_s) floats, as ``vitlib.metrics.chair``:
    CHAIR_i = (sum over captions of |mentioned - present|) / (sum of |mentioned|), CHAIR_s = the share of captions
    with mentioned - present not empty. A caption that mentions nothing counts in CHAIR_s only. (Every case has
    some mention: without any, CHAIR_i is 0/0, and ``chair`` raises ValueError.)"""
    cases = [
        ([{RC, BS}, {GT, RC}, {BS}], [{RC, BS}, {GT}, {RC, YC}], "three captions"),
        ([{RC}, set(), {BS, GT, RC, YC}], [{RC, BS}, {GT}, {BS, YC}], "a caption that mentions nothing"),
        ([{RS, BT}], [{RC, BS, GT}], "one caption, everything hallucinated"),
        ([{RC, BS, GT}, {YC}, {RS}, {BT, BS}], [{RC, BS, GT}, {YC, RS}, {BT}, {BT, BS, RC}],
         "four captions, one hallucinating"),
    ]
    checked = []
    for mentioned, present, label in cases:
        expected = _chair(mentioned, present)
        ratios = [len(m - p) / len(m) if m else 0.0 for m, p in zip(mentioned, present)]
        said = [r for r, m in zip(ratios, mentioned) if m]
        checked.append(Case(args=(mentioned, present), expected=expected, label=label, mistakes=_differing(expected, {
            "CHAIR_i divided by the objects present: it is the share of the mentioned objects that are absent":
                (expected[0] * sum(map(len, mentioned)) / sum(map(len, present)), expected[1]),
            "the mean of per-caption ratios: CHAIR_i pools the mentions, sum |hallucinated| / sum |mentioned|":
                (sum(said) / len(said), expected[1]),
            "the mean of per-caption ratios (0 for a caption without mentions): CHAIR_i pools the mentions":
                (sum(ratios) / len(ratios), expected[1]),
            "CHAIR_i and CHAIR_s swapped: CHAIR_i counts objects, CHAIR_s captions": expected[::-1],
            "objects present but not mentioned counted: a caption may leave objects out, it only may not invent "
            "them": _chair(mentioned, present, lambda m, p: m ^ p)})))
    return check(chair_scores, checked, name=function_name(chair_scores, "chair_scores"))


# ----- visual contrastive decoding -------------------------------------------------------------------------------
def _cut(l_cd: torch.Tensor, l_clean: torch.Tensor, beta: float) -> torch.Tensor:
    """l_cd where softmax(l_clean) >= beta max softmax(l_clean), -inf elsewhere."""
    p = l_clean.softmax(dim=-1)                                                  # (B, V)
    return l_cd.masked_fill(p < beta * p.amax(dim=-1, keepdim=True), NEG_INF)


def check_contrastive_logits(contrastive_logits) -> bool:
    """``contrastive_logits(l_v, l_distorted, a, beta)``: VCD's logits for logits (B, V) of the clean and the
    distorted image, as ``vitlib.guided_decoding.ContrastiveModel.contrast``: l_cd = (1 + a) l_v - a l_distorted
    where softmax(l_v) >= beta max_w softmax(l_v)(w) (the clean reading's plausible tokens), -inf elsewhere."""
    cases = []
    for i, (a, beta) in enumerate(((1.0, 0.1), (0.5, 0.3), (2.5, 0.0), (0.0, 0.5), (1.0, 1.0))):
        g = torch.Generator().manual_seed(120 + i)
        l_v = torch.randn(2, 9, generator=g) * 2                                       # (B, V)
        l_d = l_v + torch.randn(2, 9, generator=g) * 1.5                               # (B, V), a related reading
        l_cd = (1 + a) * l_v - a * l_d
        expected = _cut(l_cd, l_v, beta)
        cases.append(Case(args=(l_v, l_d, a, beta), expected=expected, label=f"a={a}, beta={beta}",
                          mistakes=_differing(expected, {
                              "no plausibility cut: tokens the clean image finds implausible must get -inf": l_cd,
                              "the cut taken on the contrasted logits: plausibility is judged by the clean "
                              "reading softmax(l_v)": _cut(l_cd, l_cd, beta),
                              "(1 - a) l_v + a l_distorted: a sign error, the distorted reading is subtracted":
                                  _cut((1 - a) * l_v + a * l_d, l_v, beta),
                              "a l_v - (1 + a) l_distorted: the roles of the clean and the distorted logits "
                              "swapped": _cut(a * l_v - (1 + a) * l_d, l_v, beta),
                              "the cut compared on logits (l_v >= beta max l_v): it compares probabilities":
                                  l_cd.masked_fill(l_v < beta * l_v.amax(dim=-1, keepdim=True), NEG_INF)})))
    return check(contrastive_logits, cases, name=function_name(contrastive_logits, "contrastive_logits"))
