"""Chapter 10's checkers accept a right answer and reject the usual wrong ones, naming the mistake; their expected
answers agree with vitlib.logits_process, vitlib.decoding, vitlib.metrics and vitlib.guided_decoding. The stub, crash
and wrong-type checks for every chapter are in test_exercises.py."""

import re

import pytest
import torch

from tiny_models import ids, tiny_gpt
from vitlib.data import ShapesWorld, language
from vitlib.decoding import beam_search
from vitlib.exercises import ch10
from vitlib.guided_decoding import ContrastiveModel
from vitlib.logits_process import TopPProcessor
from vitlib.metrics import chair


def nucleus(scores, top_p, outside):
    """scores with -inf where outside(p, mass_before, top_p) says so, p sorted most probable first (the top stays)."""
    probs, order = scores.softmax(dim=-1).sort(dim=-1, descending=True)       # (B, V), most probable first
    mass_before = torch.cat([torch.zeros_like(probs[:, :1]), probs.cumsum(dim=-1)[:, :-1]], dim=-1)   # (B, V)
    remove = outside(probs, mass_before, top_p)
    remove[:, 0] = False
    return scores.masked_fill(torch.empty_like(remove).scatter_(1, order, remove), float("-inf"))


def top_p_filter(scores, top_p):
    return nucleus(scores, top_p, lambda p, mass_before, top_p: mass_before >= top_p)


def beam_step(beam_scores, log_probs, num_beams):
    V = log_probs.shape[1]
    total = (beam_scores.unsqueeze(1) + log_probs).flatten()                   # (K V,)
    flat = total.argsort(descending=True)[:num_beams]
    return total[flat], torch.div(flat, V, rounding_mode="floor"), flat.remainder(V)


def chair_scores(mentioned, present):
    n_mentioned = n_hallucinated = n_captions_hallucinating = 0
    for m, p in zip(mentioned, present):
        absent = [pair for pair in m if pair not in p]
        n_mentioned, n_hallucinated = n_mentioned + len(m), n_hallucinated + len(absent)
        n_captions_hallucinating += bool(absent)
    return n_hallucinated / n_mentioned, n_captions_hallucinating / len(mentioned)


def plausible(l_v, beta):
    """p >= beta max p, in logs: log p >= log beta + max log p (log 0 = -inf keeps every token)."""
    log_p = l_v.log_softmax(dim=-1)
    return log_p >= log_p.amax(dim=-1, keepdim=True) + torch.tensor(beta).log()


def contrastive_logits(l_v, l_distorted, a, beta):
    return torch.where(plausible(l_v, beta), l_v + a * (l_v - l_distorted), float("-inf"))


SOLUTIONS = {ch10.check_top_p_filter: top_p_filter, ch10.check_beam_step: beam_step, ch10.check_chair: chair_scores,
             ch10.check_contrastive_logits: contrastive_logits}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_top_p_is_transformers_rule_as_topp_processor_applies_it():
    dyadic = ch10._dyadic([2, 0, 4, 1, 3, 4], [3, 1, 3, 0, 3, 3])
    assert torch.equal(dyadic.softmax(-1), torch.tensor([[4, 16, 1, 8, 2, 1], [2, 8, 2, 16, 2, 2]]) / 32), \
        "the tied cases need exact probabilities"
    random = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 2
    for scores, top_p in ((dyadic, 0.5), (ch10._dyadic([1, 0, 2, 0, 2, 0]), 0.75), (random, 0.9), (random, 0.3)):
        assert torch.equal(top_p_filter(scores, top_p), TopPProcessor(top_p)(None, scores)), top_p
    only_top = torch.tensor([[0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]).bool()    # the border token goes too
    assert torch.equal(top_p_filter(dyadic, 0.5).isfinite(), only_top)
    assert torch.equal(top_p_filter(random, 0.01).isfinite().sum(-1), torch.ones(4, dtype=torch.long))


@torch.no_grad()
def test_beam_step_is_beam_searchs_ranking():
    """Two steps of beam_step on a tiny GPT give beam_search's best hypothesis of two tokens (length_penalty 0:
    the plain sum of log-probabilities)."""
    model, prompt, K = tiny_gpt(0), ids(B=1, T=4), 3
    sequences, score = beam_search(model, prompt, max_new_tokens=2, num_beams=K, length_penalty=0.0)
    scores, beam, token = beam_step(torch.zeros(1), model(prompt)[:, -1].log_softmax(-1), K)   # (K,) each
    running = torch.cat([prompt[beam], token[:, None]], dim=1)                                # (K, 5)
    scores, beam, token = beam_step(scores, model(running)[:, -1].log_softmax(-1), K)
    assert torch.equal(sequences[0], torch.cat([running[beam[0]], token[:1]]))
    torch.testing.assert_close(score[0], scores[0])


def test_chair_scores_is_metrics_chair_on_shapesworld_captions():
    world = ShapesWorld(image_size=16)
    scenes = world.scenes(12)
    captions = [world.caption(scene) for scene in scenes]
    shown = scenes[:6] + scenes[7:] + scenes[6:7]           # the last six captions describe another scene
    mentioned = [language.parse_caption(c, strict=False) for c in captions]
    chair_i, chair_s = chair(captions, shown)
    assert 0 < chair_i < 1 and 0 < chair_s < 1
    assert chair_scores(mentioned, [scene.pairs() for scene in shown]) == (chair_i, chair_s)


@torch.no_grad()
def test_contrastive_logits_is_contrastive_models_contrast():
    model_v, model_d = tiny_gpt(0), tiny_gpt(1)
    x = ids(B=2, T=5)
    l_v, l_d = model_v(x)[:, -1], model_d(x)[:, -1]                            # (B, V)
    for a, beta in ((1.0, 0.1), (0.5, 0.4), (0.0, 0.0), (2.0, 1.0)):
        torch.testing.assert_close(contrastive_logits(l_v, l_d, a, beta),
                                   ContrastiveModel(model_v, model_d, a, beta).contrast(l_v, l_d), atol=1e-5, rtol=0)


def per_beam_best(beam_scores, log_probs, num_beams):
    best, token = log_probs.max(dim=1)
    own = beam_scores + best
    k = own.argsort(descending=True)[:num_beams]
    return own[k], k, token[k]


def top_of(total, num_beams):
    values, flat = total.flatten().topk(num_beams)
    return values, flat // total.shape[1], flat % total.shape[1]


def divided_by_k(beam_scores, log_probs, num_beams):
    values, beam, token = beam_step(beam_scores, log_probs, num_beams)
    flat, K = beam * log_probs.shape[1] + token, len(beam_scores)
    return values, flat // K, flat % K


def per_caption(mentioned, present, empty_counts):
    ratios = [len(m - p) / len(m) for m, p in zip(mentioned, present) if m]
    n = len(mentioned) if empty_counts else len(ratios)
    return sum(ratios) / n, chair_scores(mentioned, present)[1]


def symmetric(mentioned, present):
    wrong = [m ^ p for m, p in zip(mentioned, present)]
    return sum(map(len, wrong)) / sum(map(len, mentioned)), sum(map(bool, wrong)) / len(mentioned)


INF = float("-inf")
WRONG = [
    (ch10.check_top_p_filter, lambda s, p: nucleus(s, p, lambda q, before, p: before > p), "a strict <"),
    (ch10.check_top_p_filter, lambda s, p: nucleus(s, p, lambda q, before, p: before + q > p), "crosses top_p"),
    (ch10.check_top_p_filter, lambda s, p: s.softmax(-1).masked_fill(top_p_filter(s, p).isinf(), 0.0),
     "probabilities returned"),
    (ch10.check_top_p_filter, lambda s, p: s.masked_fill(top_p_filter(s, p).isinf(), 0.0), "set to 0"),
    (ch10.check_top_p_filter, lambda s, p: top_p_filter(s.T, p).T, "dim 0"),
    (ch10.check_beam_step, per_beam_best, "its own best token"),
    (ch10.check_beam_step, lambda b, lp, n: beam_step(torch.zeros_like(b), lp, n), "beam scores not added"),
    (ch10.check_beam_step, lambda b, lp, n: top_of(b.exp()[:, None] + lp.exp(), n), "probabilities added"),
    (ch10.check_beam_step, lambda b, lp, n: beam_step(b, lp, n)[::2] + beam_step(b, lp, n)[1:2], "swapped"),
    (ch10.check_beam_step, divided_by_k, "divided by K"),
    (ch10.check_chair, lambda m, p: (sum(len(x - y) for x, y in zip(m, p)) / sum(map(len, p)),
                                     chair_scores(m, p)[1]), "divided by the objects present"),
    (ch10.check_chair, lambda m, p: per_caption(m, p, empty_counts=False), "per-caption ratios:"),
    (ch10.check_chair, lambda m, p: per_caption(m, p, empty_counts=True), "0 for a caption without mentions"),
    (ch10.check_chair, lambda m, p: chair_scores(m, p)[::-1], "swapped"),
    (ch10.check_chair, symmetric, "present but not mentioned"),
    (ch10.check_contrastive_logits, lambda v, d, a, beta: (1 + a) * v - a * d, "no plausibility cut"),
    (ch10.check_contrastive_logits, lambda v, d, a, beta: contrastive_logits((1 + a) * v - a * d, d, 0.0, beta),
     "on the contrasted logits"),
    (ch10.check_contrastive_logits, lambda v, d, a, beta: contrastive_logits(v, d, -a, beta), "sign error"),
    (ch10.check_contrastive_logits, lambda v, d, a, beta: torch.where(plausible(v, beta), a * v - (1 + a) * d, INF),
     "roles of the clean and the distorted"),
    (ch10.check_contrastive_logits, lambda v, d, a, beta: ((1 + a) * v - a * d).masked_fill(
        v < beta * v.amax(-1, keepdim=True), INF), "compared on logits"),
]


@pytest.mark.parametrize("checker, wrong, mistake", WRONG, ids=[f"{c.__name__}-{m}" for c, _, m in WRONG])
def test_checkers_name_the_mistake(checker, wrong, mistake, capsys):
    assert not checker(wrong)
    assert re.search(rf"likely mistake: [^\n]*{re.escape(mistake)}", capsys.readouterr().out)
