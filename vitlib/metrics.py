"""What the course measures, in one place: accuracy with its interval, perplexity, parse rate, recall@k and
re-ranking (chapters 01, 03, 05, 06), and how chapter 10 grades captions: BLEU, CLIPScore (first met in chapter 09,
grading images) and CHAIR.

    Wilson 95% interval of an accuracy p on n trials (z = 1.96):
        (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    perplexity  PPL = exp(mean NLL per token)
    recall@k    share of queries whose target is among the k highest-scoring candidates
    BLEU-4      BLEU = 100 BP exp(sum_{n=1..4} 1/4 log p_n),  BP = min(1, exp(1 - r/c))    (Papineni et al. 2002)
                p_n = matched / all n-grams of the hypotheses, pooled over the corpus, each n-gram's matches clipped
                to its largest count in any one reference; c = the hypotheses' length in tokens, r = the sum of
                each hypothesis's closest reference length
    CLIPScore   w max(cos(E_I(image), E_T(text)), 0),  w = 2.5                               (Hessel et al. 2021)
    CHAIR_i     (mentioned objects absent from the scene) / (mentioned objects)              (Rohrbach et al. 2018)
    CHAIR_s     (captions mentioning an absent object) / (captions)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from sacrebleu.metrics import BLEU

from .checks import check_int, check_number, describe
from .data import language
from .data.scene import Scene
from .data.shapes import ShapesWorld

__all__ = ["accuracy_with_interval", "wilson_interval", "perplexity", "parse_rate", "recall_at_k", "rerank", "bleu",
           "clip_score", "chair", "chair_details"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for z = 1.96): unlike p +- z sqrt(p(1-p)/n), it stays in
    [0, 1] and is not empty at p = 0 or 1."""
    check_int(n, "n")
    check_int(successes, "successes", minimum=0, maximum=n)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_with_interval(correct) -> tuple[float, tuple[float, float]]:
    """(accuracy, Wilson 95% interval) of a bool tensor or sequence of per-example outcomes."""
    outcomes = torch.as_tensor(correct) if not isinstance(correct, torch.Tensor) else correct
    if outcomes.dtype != torch.bool or outcomes.numel() == 0:
        raise ValueError(f"correct must be a non-empty bool tensor or sequence of bools, got {describe(correct)}")
    k, n = int(outcomes.sum()), outcomes.numel()
    return k / n, wilson_interval(k, n)


def perplexity(nll) -> float:
    """exp(mean NLL) from per-token negative log-likelihoods (a tensor, in nats) or their mean (a number).

    A mean NLL too large for a float (above ~709.8 nats) gives inf, as an infinite one does.
    """
    if isinstance(nll, torch.Tensor):
        if nll.numel() == 0 or nll.dtype == torch.bool or nll.is_complex():
            raise ValueError(f"nll must be a non-empty real tensor, got {describe(nll)}")
        mean = nll.double().mean().item()
    elif isinstance(nll, numbers.Real) and not isinstance(nll, bool):
        mean = float(nll)
    else:
        raise TypeError(f"nll must be a tensor of per-token NLLs or a number, got {describe(nll)}")
    if math.isnan(mean):
        raise ValueError("nll is NaN: some token's probability was NaN (check the model's outputs)")
    if mean < 0:
        raise ValueError(f"a mean NLL is >= 0 (probabilities are <= 1), got {mean}")
    try:
        return math.exp(mean)
    except OverflowError:
        return math.inf


def parse_rate(texts, parse: Callable[[str], object]) -> float:
    """Share of ``texts`` that ``parse`` accepts (returns without raising ValueError), e.g.
    ``parse_rate(captions, world.parse_caption)``."""
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"texts must be a non-empty list of strings, got {describe(texts)}")
    if not callable(parse):
        raise TypeError(f"parse must be callable, got {describe(parse)}")
    ok = 0
    for text in texts:
        try:
            parse(text)
            ok += 1
        except ValueError:
            pass
    return ok / len(texts)


def recall_at_k(similarities: torch.Tensor, k: int, targets: torch.Tensor | None = None) -> float:
    """R@k: the fraction of queries (rows) with a relevant candidate (column) among their k most similar.

    ``targets``: None (query i's one relevant candidate is column i, as for paired images and texts), a LongTensor
    (Q,) of column indices, or a BoolTensor (Q, C) marking every relevant candidate of each query.
    """
    if not isinstance(similarities, torch.Tensor) or similarities.dim() != 2:
        raise ValueError(f"similarities must be (queries, candidates), got {tuple(getattr(similarities, 'shape', ()))}")
    Q, C = similarities.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= C:
        raise ValueError(f"k must be in 1..{C} (the number of candidates), got {k!r}")
    if Q == 0:
        raise ValueError("similarities has no queries (rows): recall over none is undefined")
    if similarities.isnan().any():   # topk ranks NaN above every number: the recall would be silently wrong
        raise ValueError("similarities holds NaN")
    if targets is not None and not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be None, a LongTensor (Q,) or a BoolTensor (Q, C), got {describe(targets)}")
    if targets is None:
        if Q > C:
            raise ValueError(f"without targets query i must match candidate i, but there are {Q} queries and {C} "
                             f"candidates")
        targets = torch.arange(Q, device=similarities.device)
    if targets.dtype == torch.bool:
        if targets.shape != (Q, C):
            raise ValueError(f"a relevance mask must have the shape of similarities {(Q, C)}, "
                             f"got {tuple(targets.shape)}")
        relevant = targets.to(similarities.device)
    else:
        if targets.shape != (Q,) or targets.dtype != torch.long:
            raise ValueError(f"targets must be (queries,) = ({Q},) column indices (long), got {describe(targets)}")
        if targets.min() < 0 or targets.max() >= C:
            raise ValueError(f"targets must be column indices in [0, {C}), got values in "
                             f"[{targets.min().item()}, {targets.max().item()}]")
        relevant = F.one_hot(targets.to(similarities.device), C).bool()  # (Q, C)
    top = similarities.topk(k, dim=1).indices                            # (Q, k)
    return relevant.gather(1, top).any(dim=1).float().mean().item()


@torch.no_grad()
def rerank(sim: torch.Tensor, k: int, score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Re-rank each query's top-k candidates of ``sim`` (Q, N) by ``score_fn(query_idx (M,), cand_idx (M,)) -> (M,)``.
    Returns scores (Q, N): each row's top-k carry their new scores; the rest keep ITC's order, below all of them."""
    if sim.dim() != 2 or not 1 <= k <= sim.shape[1]:
        raise ValueError(f"need sim (queries, candidates) and 1 <= k <= candidates, got {tuple(sim.shape)}, k={k}")
    top = sim.topk(k, dim=1).indices                                                  # (Q, k)
    query = torch.arange(len(sim), device=sim.device)[:, None].expand_as(top)         # (Q, k)
    scores = score_fn(query.flatten(), top.flatten()).view(top.shape).to(sim.dtype)   # (Q, k)
    rest = sim - sim.max(dim=1, keepdim=True).values + scores.min(dim=1, keepdim=True).values - 1
    return rest.scatter(1, top, scores)


def _check_texts(texts, name: str) -> None:
    """A non-empty list (or tuple) of str; a bare str, which would be read letter by letter, is refused."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
        got = f"an empty {type(texts).__name__}" if isinstance(texts, (list, tuple)) else describe(texts)
        raise ValueError(f"{name} must be a non-empty list of str, got {got}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {describe(text)}")


def bleu(hypotheses: list[str], references: list[list[str]] | list[str]) -> float:
    """Corpus BLEU-4 in [0, 100] of ``hypotheses`` against ``references``: one text, or a list of one or more texts,
    per hypothesis. Computed by sacrebleu's ``BLEU()`` with its defaults: the "13a" tokenizer (it splits off the
    final period, which then counts as a word), lowercase=False (the course's captions are lowercase already, so
    a capital letter counts as a different word) and "exp" smoothing: the k-th order n without any match counts
    p_n = 1 / (2^k total_n) instead of 0, so a short corpus does not score 0 for lack of one 4-gram.

    sacrebleu wants the transpose of ``references``: one stream per reference position. A hypothesis with fewer
    references than the most is padded with copies of its own first one, which change neither its clipped counts
    (a maximum over references) nor its closest reference length. Padding with "" would add a reference of length
    0 (sacrebleu keeps it, and r may change); None is dropped by sacrebleu 2.x but not accepted by every version.
    """
    _check_texts(hypotheses, "hypotheses")
    if isinstance(references, str) or not isinstance(references, (list, tuple)) \
            or len(references) != len(hypotheses):
        got = f"{len(references)} entries" if isinstance(references, (list, tuple)) else describe(references)
        raise ValueError(f"references must be a list of one entry per hypothesis ({len(hypotheses)}), got {got}")
    rows = [[r] if isinstance(r, str) else r for r in references]
    for i, row in enumerate(rows):
        _check_texts(row, f"references[{i}]")
        if not all(r.strip() for r in row):
            raise ValueError(f"references[{i}] holds an empty reference, which would count as a 0-word text")
    n_refs = max(map(len, rows))
    padded = [list(row) + [row[0]] * (n_refs - len(row)) for row in rows]   # (hypotheses, n_refs)
    streams = [list(stream) for stream in zip(*padded)]                     # (n_refs, hypotheses): sacrebleu's layout
    return BLEU().corpus_score(list(hypotheses), streams).score


@torch.no_grad()
def clip_score(model, images: torch.Tensor, texts: list[str], tokenizer=None, w: float = 2.5) -> torch.Tensor:
    """CLIPScore (B,) = w max(cos(E_I(image_i), E_T(text_i)), 0) of matching rows, with the course CLIP ``model``
    (Hessel et al. 2021 take w = 2.5), on the model's device, without gradients.

    ``images`` float (B, 3, H, W) in [0, 1]; when H, W differ from ``model.config.image_size`` they are resized to
    it first by F.interpolate (bilinear, antialias=True, align_corners=False; a non-square image is stretched).
    ``texts`` are tokenized with <bos> and <eos> by ``tokenizer``; by default ShapesWorld's, whose vocabulary is one
    for every world (``vitlib.data.language.tokenizer``) and the one the course CLIP checkpoints learned.
    """
    from .clip import CLIP   # imported here: metrics sits below the models (chapter 01's digits imports it)
    if not isinstance(model, CLIP):
        raise TypeError(f"model must be a vitlib.clip.CLIP, got {describe(model)}")
    _check_texts(texts, "texts")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 or 0 in images.shape:
        raise ValueError(f"images must be a float tensor (B >= 1, 3, H, W), got {describe(images)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [0, 1], got {describe(images)} (uint8 pixels: divide by 255)")
    if len(images) != len(texts):
        raise ValueError(f"images and texts must pair up row by row, got {len(images)} images and {len(texts)} texts")
    lo, hi = images.aminmax()
    if not (lo >= -1e-5 and hi <= 1 + 1e-5):   # NaN fails too; the slack: resizing may round 1 up by an ulp
        raise ValueError(f"images must be in [0, 1], got values in [{lo.item():.3g}, {hi.item():.3g}]")
    check_number(w, "w", low=0.0, low_open=True)
    tokenizer = language.tokenizer() if tokenizer is None else tokenizer
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be callable (texts -> input_ids, attention_mask), got {describe(tokenizer)}")
    weight, size = model.logit_scale, model.config.image_size
    images = images.to(weight.device, weight.dtype)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)                                   # (B, 3, size, size)
    batch = tokenizer(list(texts), add_bos=True, add_eos=True)
    t = model.encode_text(batch["input_ids"].to(weight.device), batch["attention_mask"].to(weight.device))  # (B, D)
    v = model.encode_image(images)                                                                          # (B, D)
    return w * F.cosine_similarity(v, t, dim=-1).clamp(min=0)


def chair_details(captions: list[str], scenes: list[Scene], world: ShapesWorld | None = None
                  ) -> list[tuple[set[tuple[str, str]], set[tuple[str, str]]]]:
    """Per caption, (mentioned, hallucinated): the (colour, shape) pairs it mentions and those of them absent from
    its scene. Mentions are ``parse_caption(caption, strict=False)``: every "colour [size] shape" in any text,
    plurals included, as a set, so a pair mentioned twice counts once. ``world`` only supplies its parse_caption."""
    _check_texts(captions, "captions")
    if isinstance(scenes, Scene) or not isinstance(scenes, (list, tuple)) or len(scenes) != len(captions):
        got = f"{len(scenes)} entries" if isinstance(scenes, (list, tuple)) else describe(scenes)
        raise ValueError(f"scenes must be a list of one Scene per caption ({len(captions)}), got {got}")
    for i, scene in enumerate(scenes):
        if not isinstance(scene, Scene):
            raise TypeError(f"scenes[{i}] must be a Scene, got {describe(scene)}")
    if world is not None and not isinstance(world, ShapesWorld):
        raise TypeError(f"world must be a ShapesWorld or None, got {describe(world)}")
    parse = language.parse_caption if world is None else world.parse_caption
    details = []
    for caption, scene in zip(captions, scenes):
        mentioned = parse(caption, strict=False)
        details.append((mentioned, mentioned - scene.pairs()))
    return details


def chair(captions: list[str], scenes: list[Scene], world: ShapesWorld | None = None) -> tuple[float, float]:
    """(CHAIR_i, CHAIR_s) of captions of ShapesWorld scenes, exact, since each scene is its own ground truth: an
    object is a (colour, shape) pair, hallucinated when its scene holds no object of that colour and shape (counts,
    sizes and positions are not judged). Mentions as in ``chair_details``: a set per caption.

    CHAIR_i is 0/0 when no caption mentions any pair; that raises ValueError rather than giving captions that name
    nothing the perfect score 0 (a caption without mentions still counts in CHAIR_s, as one without hallucination).
    """
    details = chair_details(captions, scenes, world)
    mentioned = sum(len(m) for m, _ in details)
    if mentioned == 0:
        raise ValueError(f"none of the {len(details)} captions mentions a (colour, shape) pair, so CHAIR_i = 0/0 is "
                         f"undefined; e.g. captions[0] = {captions[0]!r:.60}")
    hallucinated = sum(len(h) for _, h in details)
    return hallucinated / mentioned, sum(bool(h) for _, h in details) / len(details)
