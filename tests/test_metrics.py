"""vitlib.metrics: Wilson intervals, perplexity, parse rate, recall@k and re-ranking (chapters 01, 03, 05, 06);
BLEU against sacrebleu and by hand, CLIPScore against the CLIP's own embeddings, CHAIR on hand-made scenes
(chapter 10); a bad-input table for each of the last three."""

import math

import pytest
import sacrebleu
import torch
import torch.nn.functional as F

from vitlib import t2i, zoo
from vitlib.clip import CLIP, CLIPConfig
from vitlib.data import Obj, Scene, ShapesWorld, language, to_tensor
from vitlib.lm import cross_entropy
from vitlib.metrics import (accuracy_with_interval, bleu, chair, chair_details, clip_score, parse_rate, perplexity,
                            recall_at_k, rerank, wilson_interval)
from tiny_models import spread


def test_wilson_interval_known_values():
    # 8 of 10: the interval Wilson (1927) gives, to 4 places (0.4902, 0.9433)
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.1   # not empty at p = 0
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 0.9
    lo, hi = wilson_interval(500, 1000)
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 1000), rel=0.01)   # the normal one at large n


def test_accuracy_with_interval():
    acc, (lo, hi) = accuracy_with_interval(torch.tensor([True] * 8 + [False] * 2))
    assert acc == 0.8 and lo < 0.8 < hi
    assert accuracy_with_interval([True, False])[0] == 0.5
    for bad in (torch.tensor([]), torch.tensor([1, 0]), []):
        with pytest.raises(ValueError, match="non-empty bool"):
            accuracy_with_interval(bad)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_perplexity():
    assert perplexity(torch.full((10,), math.log(80))) == pytest.approx(80)
    assert perplexity(0.0) == 1.0
    uniform = cross_entropy(torch.zeros(6, 50), torch.randint(0, 50, (6,)))
    assert perplexity(uniform) == pytest.approx(50, rel=1e-6)


def test_parse_rate():
    def parse(text):
        if "bad" in text:
            raise ValueError("no")
        return text

    assert parse_rate(["ok", "bad", "ok", "ok"], parse) == 0.75
    with pytest.raises(ValueError, match="non-empty list of strings"):
        parse_rate([], parse)
    with pytest.raises(TypeError, match="parse must be callable"):
        parse_rate(["ok"], "parse")


def test_recall_at_k():
    s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.2, 0.3]])
    assert recall_at_k(s, 1) == pytest.approx(2 / 3)
    assert recall_at_k(s, 2) == 1.0
    assert recall_at_k(s, 1, targets=torch.tensor([0, 0, 2])) == 1.0
    with pytest.raises(ValueError, match="k must be in 1..3"):
        recall_at_k(s, 4)


def test_recall_refuses_what_would_make_it_silently_wrong():
    s = torch.eye(3)
    with pytest.raises(ValueError, match="NaN"):   # topk ranks NaN first
        recall_at_k(s * math.nan, 1)
    with pytest.raises(ValueError, match=r"\[0, 3\), got values in \[-1, 2\]"):
        recall_at_k(s, 1, targets=torch.tensor([0, -1, 2]))


def test_rerank():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.9, 0.8]])
    prefer = torch.tensor([1, 3])
    reranked = rerank(sim, 2, lambda q, c: (c == prefer[q]).float())
    assert reranked.argmax(dim=1).tolist() == [1, 3]
    assert reranked[0].argsort(descending=True).tolist() == [1, 0, 2, 3]   # the rest keep ITC's order, below
    with pytest.raises(ValueError, match="1 <= k <= candidates"):
        rerank(sim, 5, lambda q, c: q.float())


# ----- BLEU -----------------------------------------------------------------------------------------------------------
HYPS = ["a red circle at the top.", "a blue square."]
REFS = ["a red circle at the top left.", "a blue square."]


def test_bleu_is_sacrebleus_corpus_bleu():
    assert abs(bleu(HYPS, REFS) - sacrebleu.corpus_bleu(HYPS, [REFS]).score) < 1e-9
    assert abs(bleu(HYPS, [[r] for r in REFS]) - sacrebleu.corpus_bleu(HYPS, [REFS]).score) < 1e-9
    assert bleu(REFS, REFS) == pytest.approx(100, abs=1e-9)
    # only "a" and "." match; "exp" smoothing puts 1 / (2^k total_n) for the k-th order n without a match
    smoothed = 100 * (2 / 4 * 1 / (2 * 3) * 1 / (4 * 2) * 1 / (8 * 1)) ** (1 / 4)
    assert abs(bleu(["a blue square."], ["a red circle."]) - smoothed) < 1e-9


def test_bleu_by_hand():
    # "13a" splits off the period: hypothesis 1 has c = 7 tokens, its reference r = 8; hypothesis 2 equals its own.
    # n-grams of hypothesis 1 missing from the reference: none of 7 unigrams, "top ." among 6 bigrams,
    # "the top ." among 5 trigrams, "at the top ." among 4 four-grams. Hypothesis 2: 4, 3, 2 and 1 n-grams, all found.
    p = [(7 + 4) / (7 + 4), (5 + 3) / (6 + 3), (4 + 2) / (5 + 2), (3 + 1) / (4 + 1)]   # pooled over the corpus
    bp = math.exp(1 - (8 + 4) / (7 + 4))                                                # c = 11 < r = 12
    expected = 100 * bp * math.exp(sum(math.log(p_n) / 4 for p_n in p))
    assert abs(bleu(HYPS, REFS) - expected) < 1e-9
    one = 100 * math.exp(1 - 8 / 7) * (1 * 5 / 6 * 4 / 5 * 3 / 4) ** (1 / 4)
    assert abs(bleu(HYPS[:1], REFS[:1]) - one) < 1e-9
    sentence_mean = (one + 100) / 2
    assert abs(bleu(HYPS, REFS) - sentence_mean) > 1, "corpus BLEU pools the counts; it is not a mean of sentences"


def test_bleu_with_a_varying_number_of_references():
    hyps = ["a red circle.", "a blue square.", "two objects: a red circle and a green cross."]
    refs = [["there is a red circle at the top left."],
            ["a blue square.", "the image shows a blue square."],
            ["a green cross and a red circle.", "two objects: a green cross and a red circle.", "a red circle."]]
    streams = [[row[k] if k < len(row) else None for row in refs] for k in range(3)]   # sacrebleu 2.x drops None
    ours = bleu(hyps, refs)
    assert abs(ours - sacrebleu.corpus_bleu(hyps, streams).score) < 1e-9
    # a reference repeated or moved changes nothing; one more (or fewer) does
    assert abs(bleu(hyps, [row[::-1] + row[:1] for row in refs]) - ours) < 1e-9
    assert abs(bleu(hyps, [row[0] for row in refs]) - ours) > 1
    # padding with "" instead adds a 0-word reference: hypothesis 1's closest length drops from 10 to 0, BP to 1
    empty = [[row[k] if k < len(row) else "" for row in refs] for k in range(3)]
    assert sacrebleu.corpus_bleu(hyps, empty).score - ours > 10


@pytest.mark.parametrize("hyps, refs, error, match", [
    ([], [], ValueError, "hypotheses must be a non-empty list of str, got an empty list"),
    ("a red circle.", ["a red circle."], ValueError, "hypotheses must be a non-empty list of str, got str"),
    ([1], ["a red circle."], TypeError, r"hypotheses\[0\] must be a str, got int"),
    (["a red circle."], "a red circle.", ValueError, "references must be a list of one entry per hypothesis"),
    (["a red circle.", "a blue square."], ["a red circle."], ValueError, r"per hypothesis \(2\), got 1 entries"),
    (["a red circle."], [[]], ValueError, r"references\[0\] must be a non-empty list of str, got an empty list"),
    (["a red circle."], [None], ValueError, r"references\[0\] must be a non-empty list of str, got NoneType"),
    (["a red circle."], [["a red circle.", 3]], TypeError, r"references\[0\]\[1\] must be a str, got int"),
    (["a red circle."], [" "], ValueError, r"references\[0\] holds an empty reference"),
])
def test_bleu_bad_inputs(hyps, refs, error, match):
    with pytest.raises(error, match=match):
        bleu(hyps, refs)


# ----- CLIPScore ------------------------------------------------------------------------------------------------------
TEXTS = ["a red circle.", "at the top left there is a small blue square.", "two objects: a green cross and a red "
         "circle.", "the image shows a yellow triangle."]


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig(embed_dim=16, vision_width=16, vision_heads=2, text_width=16, text_heads=2, text_layers=1,
                            max_len=24)).eval()
    spread(model)
    return model


def images(n=4, size=24, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_clip_score_is_w_times_the_clipped_cosine(tiny_clip):
    x, tok = images(), language.tokenizer()
    ids = tok(TEXTS, add_bos=True, add_eos=True)
    v = tiny_clip.encode_image(x)
    t = tiny_clip.encode_text(ids["input_ids"], ids["attention_mask"])
    cos = (v * t).sum(-1) / (v.norm(dim=-1) * t.norm(dim=-1))        # (B,), by hand
    score = clip_score(tiny_clip, x, TEXTS)
    assert not score.requires_grad and score.shape == (4,)
    torch.testing.assert_close(score, 2.5 * cos.clamp(min=0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(clip_score(tiny_clip, x, TEXTS, w=1.0), cos.clamp(min=0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(clip_score(tiny_clip, x.double(), TEXTS), score)   # cast to the model's dtype
    # negatives clip at 0: with the text projection negated every cosine changes sign, so each row scores in one
    flipped = CLIP(tiny_clip.config).eval()
    flipped.load_state_dict(tiny_clip.state_dict())
    with torch.no_grad():
        flipped.text_projection.weight.neg_()
    negated = clip_score(flipped, x, TEXTS)
    assert (score * negated == 0).all() and (score > 0).any() and (negated > 0).any()
    torch.testing.assert_close(score + negated, 2.5 * cos.abs(), atol=1e-6, rtol=1e-5)


def test_clip_score_resizes_to_the_models_image_size(tiny_clip):
    big = images(size=48)
    small = F.interpolate(big, size=(24, 24), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(clip_score(tiny_clip, big, TEXTS), clip_score(tiny_clip, small, TEXTS), atol=0, rtol=0)
    plain = F.interpolate(big, size=(24, 24), mode="bilinear", antialias=False, align_corners=False)
    assert not torch.allclose(clip_score(tiny_clip, big, TEXTS), clip_score(tiny_clip, plain, TEXTS), atol=1e-4)


def test_clip_score_tokenizer_defaults_to_shapesworlds_and_t2i_calls_it(tiny_clip):
    tok = ShapesWorld(image_size=16, max_objects=2, seed=3, colors=["red", "blue"], shapes=["circle", "square"],
                      holdout=(), bias_pairs=()).tokenizer
    assert tok.vocab == ShapesWorld().tokenizer.vocab == language.tokenizer().vocab   # one for every world
    assert tok.eos_id == CLIPConfig().eos_id and tok.vocab_size <= CLIPConfig().vocab_size
    x = images()
    score = clip_score(tiny_clip, x, TEXTS)
    torch.testing.assert_close(clip_score(tiny_clip, x, TEXTS, tokenizer=tok), score, atol=0, rtol=0)
    torch.testing.assert_close(t2i.clip_score(tiny_clip, tok, x, TEXTS, w=2.5), score, atol=0, rtol=0)


def test_clip_score_of_the_course_clip_tells_true_captions_from_shuffled_ones():
    from vitlib.recipes.clip_shapes import world
    w, model = world(), zoo.load("clip-shapes")
    scenes = w.scenes(200, split="test")
    captions, x = [w.caption(s) for s in scenes], to_tensor(w.render_batch(scenes))
    true, shuffled = clip_score(model, x, captions), clip_score(model, x, captions[1:] + captions[:1])
    # measured: 2.36 against 0.45, the true caption higher for 199 of 200 scenes
    assert true.mean() > 2.0 and shuffled.mean() < 1.0 and (true > shuffled).float().mean() > 0.95


@pytest.mark.parametrize("change, error, match", [
    (dict(model=torch.nn.Linear(2, 2)), TypeError, "model must be a vitlib.clip.CLIP, got Linear"),
    (dict(images=torch.rand(3, 24, 24)), ValueError, r"images must be a float tensor \(B >= 1, 3, H, W\)"),
    (dict(images=torch.rand(4, 24, 24, 3)), ValueError, r"images must be a float tensor .* got torch.float32 "
                                                         r"\(4, 24, 24, 3\)"),
    (dict(images=torch.rand(0, 3, 24, 24)), ValueError, r"images must be a float tensor \(B >= 1"),
    (dict(images=[[0.5]]), ValueError, "images must be a float tensor"),
    (dict(images=torch.zeros(4, 3, 24, 24, dtype=torch.uint8)), TypeError, "images must be float in .* divide by 255"),
    (dict(images=torch.rand(3, 3, 24, 24)), ValueError, "images and texts must pair up row by row, got 3 images and 4"),
    (dict(images=torch.rand(4, 3, 24, 24) * 2 - 1), ValueError, r"images must be in \[0, 1\], got values in \[-"),
    (dict(images=torch.full((4, 3, 24, 24), math.nan)), ValueError, r"images must be in \[0, 1\].*nan"),
    (dict(texts="a red circle."), ValueError, "texts must be a non-empty list of str, got str"),
    (dict(texts=[]), ValueError, "texts must be a non-empty list of str, got an empty list"),
    (dict(texts=["a red circle.", None, "a", "b"]), TypeError, r"texts\[1\] must be a str, got NoneType"),
    (dict(w=0), ValueError, "w must be > 0.0, got 0"),
    (dict(w=-2.5), ValueError, "w must be > 0.0"),
    (dict(w="2.5"), TypeError, "w must be a real number, got str"),
    (dict(tokenizer="words"), TypeError, "tokenizer must be callable"),
])
def test_clip_score_bad_inputs(tiny_clip, change, error, match):
    args = dict(model=tiny_clip, images=images(), texts=TEXTS) | change
    with pytest.raises(error, match=match):
        clip_score(**args)


# ----- CHAIR ----------------------------------------------------------------------------------------------------------
A = Scene((Obj("circle", "red", "small", (0, 0)), Obj("square", "blue", "large", (1, 1))))
B = Scene((Obj("triangle", "green", "small", (0, 2)),))
CAPTIONS = [
    ("a red circle and a blue square.", A),                      # 2 mentioned, none absent
    ("a green triangle and a red circle.", B),                   # 2 mentioned, the red circle absent
    ("a red circle at the top left. there is a red circle.", A),  # the same pair twice: mentioned once
    ("two red circles and a large blue square.", A),             # plurals; the count (two) is not judged
    ("there are two blue squares.", B),                          # a plural, absent
    ("nothing to see here.", B),                                 # no mention: in CHAIR_s, not in CHAIR_i
]
RC, BS, GT = ("red", "circle"), ("blue", "square"), ("green", "triangle")


def test_chair_exact_fractions():
    captions, scenes = zip(*CAPTIONS)
    assert chair_details(list(captions), list(scenes)) == [
        ({RC, BS}, set()), ({GT, RC}, {RC}), ({RC}, set()), ({RC, BS}, set()), ({BS}, {BS}), (set(), set())]
    chair_i, chair_s = chair(list(captions), list(scenes))
    assert chair_i == 2 / 8      # 2 absent of 2 + 2 + 1 + 2 + 1 + 0 mentioned pairs
    assert chair_s == 2 / 6      # captions 1 and 4 of six
    assert chair(["a red circle."], [A]) == (0.0, 0.0) and chair(["a red circle."], [B]) == (1.0, 1.0)


def test_chair_without_any_mention_is_undefined():
    with pytest.raises(ValueError, match=r"none of the 2 captions mentions a \(colour, shape\) pair, so CHAIR_i = 0/0"):
        chair(["nothing.", "a circle and a square."], [A, B])   # shapes without a colour are no mention either


def test_chair_takes_the_worlds_parser():
    class Literal(ShapesWorld):   # a world whose parser sees one pair in every text
        def parse_caption(self, text, strict=True):
            return {GT}

    world = Literal(image_size=16)
    assert chair_details(["a red circle."], [A], world) == [({GT}, {GT})]
    assert chair(["a red circle."], [B], world=world) == (0.0, 0.0)


@pytest.mark.parametrize("fn", [chair, chair_details])
@pytest.mark.parametrize("captions, scenes, world, error, match", [
    ([], [], None, ValueError, "captions must be a non-empty list of str, got an empty list"),
    ("a red circle.", [A], None, ValueError, "captions must be a non-empty list of str, got str"),
    (["a red circle.", 7], [A, B], None, TypeError, r"captions\[1\] must be a str, got int"),
    (["a red circle.", "a blue square."], [A], None, ValueError, r"one Scene per caption \(2\), got 1 entries"),
    (["a red circle."], A, None, ValueError, "scenes must be a list of one Scene per caption"),
    (["a red circle."], [A.objects[0]], None, TypeError, r"scenes\[0\] must be a Scene, got Obj"),
    (["a red circle."], [A], "world", TypeError, "world must be a ShapesWorld or None, got str"),
])
def test_chair_bad_inputs(fn, captions, scenes, world, error, match):
    with pytest.raises(error, match=match):
        fn(captions, scenes, world)
