"""vitlib.guided_decoding: CLIP re-ranking, MAGIC and visual contrastive decoding, each checked against an oracle
recomputed from scratch (greedy decoding, brute force over the candidates, the formulas by hand), and the shipped
gpt-shapes + clip-shapes pair showing that MAGIC's captions describe their images."""

import math

import pytest
import torch
import torch.nn.functional as F

from tiny_models import spread, tiny_gpt
from vitlib import zoo
from vitlib.captioner import Captioner, CaptionerConfig
from vitlib.clip import CLIP, CLIPConfig, score_pairs
from vitlib.data import ShapesWorld, to_tensor
from vitlib.decoding import TopKProcessor, beam_search, greedy, sample
from vitlib.diffusion import NoiseSchedule
from vitlib.guided_decoding import ContrastiveModel, clip_rerank, degeneration_penalty, distort, magic_search
from vitlib.metrics import chair, clip_score
from vitlib.recipes import clip_shapes
from vitlib.vision import patchify


def tiny_clip(seed: int = 0) -> CLIP:
    """A random CLIP over the course vocabulary (as tests/test_clip.py builds one): 24x24 images, texts <= 24."""
    torch.manual_seed(seed)
    model = CLIP(CLIPConfig(embed_dim=16, vision_width=32, vision_heads=2, text_width=32, text_heads=2, max_len=24))
    spread(model)
    return model.eval()


TOK = ShapesWorld().tokenizer
V = TOK.vocab_size                   # 80: the course vocabulary, shared by the LM and CLIP
LM = tiny_gpt(vocab_size=V)
CLIP_MODEL = tiny_clip()             # max_len 24, 24x24 images
IMAGES = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
BOS = torch.full((3, 1), TOK.bos_id)
PROMPTS = torch.tensor([[TOK.bos_id, 5, 9], [TOK.bos_id, 7, 7], [TOK.bos_id, 30, 12]])


def lm_states(ids):
    """Recomputed without a cache: the LM's last-position probabilities (B, V) and its states (B, T, d)."""
    logits, h = LM(ids, return_hidden=True)
    return logits[:, -1].softmax(dim=-1), h


def magic_scores(images, prefix, alpha, beta, k):
    """MAGIC's score of each of the k candidates after ``prefix`` (B, t), from scratch: (V_k (B, k), scores)."""
    p, h_prefix = lm_states(prefix)
    p_k, v_k = p.topk(k)
    scores = torch.empty(p_k.shape)
    for b in range(len(prefix)):
        texts = torch.stack([torch.cat([prefix[b], v.view(1), torch.tensor([TOK.eos_id])]) for v in v_k[b]])
        s = CLIP_MODEL(images[b:b + 1], texts)[0]                                   # (k,) scaled cosines
        h_v = LM(texts[:, :-1], return_hidden=True)[1][:, -1]                       # (k, d): the state at v
        penalty = torch.stack([max(F.cosine_similarity(h, h_j, dim=0) for h_j in h_prefix[b]) for h in h_v])
        scores[b] = (1 - alpha) * p_k[b] - alpha * penalty + beta * s.softmax(dim=0)
    return v_k, scores


def assert_each_step_is_the_argmax(out, images, prompt_len, alpha, beta, k):
    """Every token MAGIC chose is (up to float noise) the best-scoring candidate of the brute force."""
    for t in range(prompt_len, out.shape[1]):
        v_k, scores = magic_scores(images, out[:, :t], alpha, beta, k)
        for b in range(len(out)):
            chosen = (v_k[b] == out[b, t]).nonzero()
            assert len(chosen) == 1, f"row {b} step {t}: token {out[b, t]} is not among the LM's top {k}"
            assert scores[b, chosen.item()] >= scores[b].max() - 1e-5, f"row {b} step {t}"


@torch.no_grad()
def test_gpt_return_hidden_is_the_final_layernorm_state():
    ids = PROMPTS
    logits, h = LM(ids, return_hidden=True)
    assert torch.equal(logits, LM(ids)) and torch.equal(h, LM.transformer(ids))
    logits_c, cache, h_c = LM(ids[:, :2], use_cache=True, return_hidden=True)
    logits_n, _, h_n = LM(ids[:, 2:], past_kv=cache, use_cache=True, return_hidden=True)
    torch.testing.assert_close(torch.cat([h_c, h_n], 1), h, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits_n, logits[:, 2:], atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="return_hidden must be a bool, got str"):
        LM(ids, return_hidden="yes")


# ----- (a) CLIP re-ranking -----------------------------------------------------------------------------------------
def test_clip_rerank_keeps_the_highest_cosine_per_image():
    candidates = [["a red circle.", "a blue square.", "two objects: a green triangle."], ["a yellow diamond."],
                  ["a purple cross.", "a red circle and a blue square."]]
    best, scores = clip_rerank(CLIP_MODEL, TOK, IMAGES, candidates)
    assert scores.shape == (3, 3) and scores[1, 1:].eq(-math.inf).all()
    for b, texts in enumerate(candidates):
        cos = score_pairs(CLIP_MODEL, TOK, IMAGES[b:b + 1].expand(len(texts), -1, -1, -1), texts)   # brute force
        torch.testing.assert_close(scores[b, :len(texts)], cos, atol=1e-5, rtol=0)
        assert best[b] == texts[cos.argmax().item()]
    assert len(set(scores.argmax(1).tolist())) > 1, "a test where every image picks the same slot proves little"


# ----- (b) MAGIC ---------------------------------------------------------------------------------------------------
def test_degeneration_penalty_by_hand():
    h_context = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])                 # (1, 2, 2)
    h_v = torch.tensor([[[3.0, 3.0], [-1.0, 0.0], [0.0, -5.0], [1.0, 1e-3]]])   # (1, 4, 2)
    expected = torch.tensor([[1 / math.sqrt(2), 0.0, 0.0, 1 / math.sqrt(1 + 1e-6)]])
    torch.testing.assert_close(degeneration_penalty(h_v, h_context), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("prompt", ["bos", "words"])
def test_magic_without_penalty_and_clip_is_greedy(use_cache, prompt):
    ids = BOS if prompt == "bos" else PROMPTS
    for eos in (None, 63):   # greedy reaches 63 after 9 to 11 tokens, or (one row of PROMPTS) not at all
        out = magic_search(LM, CLIP_MODEL, IMAGES, ids, 12, k=4, alpha=0.0, beta=0.0, eos_token_id=eos,
                           use_cache=use_cache)
        assert torch.equal(out, greedy(LM, ids, 12, eos_token_id=eos))


def test_magic_with_large_beta_picks_the_top_k_token_clip_prefers():
    k = 6
    out = magic_search(LM, CLIP_MODEL, IMAGES, BOS, 8, k=k, alpha=0.0, beta=1e6)
    assert not torch.equal(out, greedy(LM, BOS, 8)), "CLIP should change some choice"
    for t in range(1, out.shape[1]):   # brute force: CLIP's logits of every extended text, one image at a time
        top = lm_states(out[:, :t])[0].topk(k).indices                            # (B, k)
        for b in range(3):
            texts = torch.stack([torch.cat([out[b, :t], v.view(1), torch.tensor([TOK.eos_id])]) for v in top[b]])
            assert out[b, t] == top[b, CLIP_MODEL(IMAGES[b:b + 1], texts)[0].argmax()]


@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (0.4, 2.0), (0.1, 0.5)])
def test_magic_chooses_the_argmax_of_the_full_score(alpha, beta):
    out = magic_search(LM, CLIP_MODEL, IMAGES, PROMPTS, 6, k=5, alpha=alpha, beta=beta)
    assert_each_step_is_the_argmax(out, IMAGES, PROMPTS.shape[1], alpha, beta, k=5)
    if alpha == 1.0:
        assert not torch.equal(out, greedy(LM, PROMPTS, 6)), "the penalty alone should change some choice"


def test_magic_cached_equals_uncached_and_finished_rows_repeat_eos():
    outs = [magic_search(LM, CLIP_MODEL, IMAGES, BOS, 16, k=5, alpha=0.3, beta=2.0, eos_token_id=14,
                         use_cache=c) for c in (True, False)]
    assert torch.equal(*outs)
    out = outs[0]
    finished = [row.index(14) for row in out[:, 1:].tolist() if 14 in row]
    assert finished, "no row produced eos: pick another eos id for this test"
    for row in out[:, 1:].tolist():
        if 14 in row:
            assert set(row[row.index(14):]) == {14}
    single = magic_search(LM, CLIP_MODEL, IMAGES[1:2], BOS[1:2], 16, k=5, alpha=0.3, beta=2.0, eos_token_id=14)
    assert torch.equal(single[0], out[1, :single.shape[1]]), "rows are decoded independently"


# ----- (c) visual contrastive decoding -----------------------------------------------------------------------------
GPT_V, GPT_D = tiny_gpt(0), tiny_gpt(1)   # two "readings" of one image over one vocabulary (23 tokens)
IDS = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(3))


@torch.no_grad()
@pytest.mark.parametrize("use_cache", [True, False])
def test_vcd_without_contrast_or_cut_is_model_v(use_cache):
    vcd = ContrastiveModel(GPT_V, GPT_D, a=0.0, beta=0.0)
    out = vcd(IDS, use_cache=use_cache)
    assert torch.equal(out[0] if use_cache else out, GPT_V(IDS))
    if use_cache:   # a step on the combined cache is each model's step on its own
        step = vcd(IDS[:, :1], past_kv=out[1], use_cache=True)[0]
        torch.testing.assert_close(step, GPT_V(torch.cat([IDS, IDS[:, :1]], 1))[:, -1:], atol=1e-5, rtol=0)


@torch.no_grad()
def test_vcd_contrast_and_plausibility_cut_by_hand():
    l_v, l_d = GPT_V(IDS), GPT_D(IDS)
    a, beta = 0.7, 0.4   # the tiny model is unsure: p / max p is below 0.4 for about 3 tokens in 4
    out = ContrastiveModel(GPT_V, GPT_D, a=a, beta=beta)(IDS)
    p = l_v.softmax(-1)
    keep = p >= beta * p.max(-1, keepdim=True).values
    assert 0 < keep.sum() < keep.numel() / 2, "the cut should remove some tokens but keep a few"
    assert torch.equal(out.isfinite(), keep), "exactly the tokens below beta max p are cut"
    torch.testing.assert_close(out[keep], (1.7 * l_v - 0.7 * l_d)[keep], atol=1e-5, rtol=0)
    torch.testing.assert_close(ContrastiveModel(GPT_V, GPT_D, a=a, beta=0.0)(IDS), 1.7 * l_v - 0.7 * l_d,
                               atol=1e-5, rtol=0)
    assert not torch.equal(out.argmax(-1), l_v.argmax(-1)), "the contrast should move some argmax"
    only_best = ContrastiveModel(GPT_V, GPT_D, a=a, beta=1.0)(IDS).isfinite()
    assert torch.equal(only_best, F.one_hot(l_v.argmax(-1), 23).bool()), "beta = 1 keeps the argmax alone"


def test_vcd_decoding_loops_agree_with_and_without_cache():
    vcd = ContrastiveModel(GPT_V, GPT_D, a=1.0, beta=0.1)
    assert torch.equal(greedy(vcd, IDS, 10, eos_token_id=5), greedy(vcd, IDS, 10, eos_token_id=5, use_cache=False))
    seqs, scores = beam_search(vcd, IDS, 8, num_beams=3)
    seqs_nc, scores_nc = beam_search(vcd, IDS, 8, num_beams=3, use_cache=False)
    assert torch.equal(seqs, seqs_nc)
    torch.testing.assert_close(scores, scores_nc, atol=1e-5, rtol=0)
    drawn = [sample(vcd, IDS, 10, generator=torch.Generator().manual_seed(0), use_cache=c,
                    logits_processor=TopKProcessor(5)) for c in (True, False)]
    assert torch.equal(*drawn)
    assert not torch.equal(greedy(vcd, IDS, 10), greedy(GPT_V, IDS, 10)), "VCD should change the greedy text"
    assert not vcd.training and not GPT_V.training and not GPT_D.training, "modes are restored"


def test_vcd_on_a_captioner_bound_to_an_image_and_its_distortion():
    """The intended use: one captioner, read on the images and on distort(images); beam search reorders both
    captioners' caches (words and image keys) through ContrastiveModel.reorder_cache."""
    torch.manual_seed(0)
    captioner = Captioner(CaptionerConfig(vocab_size=23, max_len=20, d_model=32, n_heads=4, n_layers=2,
                                          d_image=8 * 8 * 3)).eval()
    images = IMAGES[:2]
    noised = distort(images, 400, torch.Generator().manual_seed(1))
    vcd = ContrastiveModel(captioner.bind(patchify(images, 8)), captioner.bind(patchify(noised, 8)))   # (B, 9, 192)
    start = torch.full((2, 1), 1)
    assert torch.equal(greedy(vcd, start, 10), greedy(vcd, start, 10, use_cache=False))
    assert torch.equal(beam_search(vcd, start, 8, 3)[0], beam_search(vcd, start, 8, 3, use_cache=False)[0])


def test_distort_is_the_forward_process_in_pixel_range():
    schedule = NoiseSchedule()
    out = distort(IMAGES, 250, torch.Generator().manual_seed(7))
    eps = torch.randn(IMAGES.shape, generator=torch.Generator().manual_seed(7))
    a_bar = schedule.alpha_bar(250)
    expected = ((a_bar.sqrt() * (2 * IMAGES - 1) + (1 - a_bar).sqrt() * eps + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert out.min() >= 0 and out.max() <= 1 and 0 < (out == 0).float().mean() < 0.5, "clamped, a little"
    torch.testing.assert_close(distort(IMAGES, 0), IMAGES, atol=0.06, rtol=0)   # alpha_bar_0 = 1 - 1e-4
    late = distort(IMAGES, 999, torch.Generator().manual_seed(7))
    assert abs(torch.corrcoef(torch.stack([late.flatten(), IMAGES.flatten()]))[0, 1]) < 0.05, "t = T-1: noise only"


# ----- bad input ---------------------------------------------------------------------------------------------------
TEXTS3 = [["a red circle."]] * 3
BAD = [
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES, "a red circle."), ValueError, r"one list of texts per image \(3\)"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES, TEXTS3[:2]), ValueError, r"per image \(3\), got 2 lists"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES, [["a"], [], ["b"]]), ValueError, r"candidates\[1\] must be a non"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES, [["a"], ["b"], [3]]), ValueError, r"candidates\[2\] must be"),
    (lambda: clip_rerank(CLIP_MODEL, None, IMAGES, TEXTS3), TypeError, r"tokenizer must be callable"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES, [["a zebra."]] * 3), ValueError, r"'zebra' is not in the vocab"),
    (lambda: clip_rerank(LM, TOK, IMAGES, TEXTS3), TypeError, r"clip must be a vitlib\.clip\.CLIP, got GPT"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES[:, :, :16, :16], TEXTS3), ValueError, r"must be 24x24 for this"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES[:0], []), ValueError, r"images is an empty batch"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES * 255, TEXTS3), ValueError, r"images must be in \[0, 1\]"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES[0], TEXTS3), ValueError, r"images must have shape \(B, 3, H, W\)"),
    (lambda: clip_rerank(CLIP_MODEL, TOK, IMAGES.double(), TEXTS3), TypeError, r"dtype torch\.float64 but the mod"),
    (lambda: degeneration_penalty(torch.randn(2, 4), torch.randn(2, 3, 4)), ValueError, r"h_v must be a float ten"),
    (lambda: degeneration_penalty(torch.randn(2, 1, 4), torch.randn(2, 0, 4)), ValueError, r"h_context must be"),
    (lambda: degeneration_penalty(torch.ones(2, 1, 4, dtype=torch.long), torch.randn(2, 3, 4)), ValueError, "h_v"),
    (lambda: degeneration_penalty(torch.randn(2, 1, 4), torch.randn(3, 3, 4)), ValueError, r"must share B and d"),
    (lambda: degeneration_penalty(torch.randn(2, 1, 4), torch.randn(2, 3, 5)), ValueError, r"must share B and d"),
    (lambda: magic_search(TOK, CLIP_MODEL, IMAGES, BOS, 4), TypeError, r"config gives vocab_size and max_len"),
    (lambda: magic_search(CLIP_MODEL, CLIP_MODEL, IMAGES, BOS, 4), TypeError, r"lm must return its last states"),
    (lambda: magic_search(LM, LM, IMAGES, BOS, 4), TypeError, r"clip must be a vitlib\.clip\.CLIP, got GPT"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES[:2], BOS, 4), ValueError, r"has 2 images but input_ids has 3 rows"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES[:0], BOS[:0], 4), ValueError, r"batch, length >= 1, got \(0, 1\)"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES[:0], BOS[:1], 4), ValueError, r"images is an empty batch"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES.mul(2), BOS, 4), ValueError, r"images must be in \[0, 1\]"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES.clone().fill_(math.nan), BOS, 4), ValueError, r"in \[0, 1\]"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES[..., :8], BOS, 4), ValueError, r"must be 24x24 for this CLIP"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS.float(), 4), ValueError, r"LongTensor \(batch, length\)"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, k=0), ValueError, r"k must be a positive int, got 0"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, k=81), ValueError, r"k must be at most 80, got 81"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, alpha=1.5), ValueError, r"alpha must be in \[0\.0, 1"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, alpha=-0.1), ValueError, r"alpha must be in \[0\.0, 1"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, beta=-1.0), ValueError, r"beta must be >= 0\.0, got -1"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, beta="2"), TypeError, r"beta must be a real number"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, eos_token_id=80), ValueError, r"eos_token_id must be a"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 4, use_cache=1), TypeError, r"use_cache must be a bool"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, -1), ValueError, r"max_new_tokens must be an int >= 0"),
    (lambda: magic_search(LM, CLIP_MODEL, IMAGES, BOS, 23), ValueError, r"\+ <eos> exceeds CLIP's max_len=24"),
    (lambda: magic_search(GPT_V, CLIP_MODEL, IMAGES, BOS, 4), ValueError, r"share one vocabulary, got vocab_size 23"),
    (lambda: ContrastiveModel(GPT_V, TOK), TypeError, r"model_distorted must be an nn\.Module whose config"),
    (lambda: ContrastiveModel(GPT_V, LM), ValueError, r"share one vocabulary, got vocab_size 23 and 80"),
    (lambda: ContrastiveModel(GPT_V, GPT_D, a=-1.0), ValueError, r"a must be >= 0\.0, got -1\.0"),
    (lambda: ContrastiveModel(GPT_V, GPT_D, a=math.inf), ValueError, r"a must be >= 0\.0, got inf"),
    (lambda: ContrastiveModel(GPT_V, GPT_D, beta=1.5), ValueError, r"beta must be in \[0\.0, 1\.0\], got 1\.5"),
    (lambda: ContrastiveModel(GPT_V, GPT_D, beta=-0.1), ValueError, r"beta must be in \[0\.0, 1\.0\]"),
    (lambda: ContrastiveModel(GPT_V, GPT_D, a=True), TypeError, r"a must be a real number, got bool"),
    (lambda: ContrastiveModel(GPT_V, GPT_D)(IDS, past_kv=torch.zeros(2)), ValueError, r"past_kv must be the \(mo"),
    (lambda: ContrastiveModel(GPT_V, GPT_D)(IDS, use_cache="no"), TypeError, r"use_cache must be a bool, got str"),
    (lambda: ContrastiveModel(GPT_V, GPT_D)(IDS + 30), ValueError, r"token ids must be in \[0, 23\)"),
    (lambda: distort(IMAGES, 1000), ValueError, r"noise_step must be at most 999, got 1000"),
    (lambda: distort(IMAGES, -1), ValueError, r"noise_step must be an int >= 0, got -1"),
    (lambda: distort(IMAGES, 2.5), ValueError, r"noise_step must be an int >= 0, got 2\.5"),
    (lambda: distort(IMAGES, 5, generator=0), TypeError, r"generator must be a torch\.Generator or None, got int"),
    (lambda: distort(IMAGES, 5, schedule="linear"), TypeError, r"schedule must be a vitlib\.diffusion\.NoiseSch"),
    (lambda: distort(IMAGES - 1, 5), ValueError, r"images must be in \[0, 1\], got values in \[-1"),
    (lambda: distort(IMAGES[:0], 5), ValueError, r"images is an empty batch"),
    (lambda: distort((IMAGES * 255).byte(), 5), TypeError, r"images must be a float tensor with values in \[0, 1"),
    (lambda: distort(IMAGES[:, :1], 5), ValueError, r"images must have shape \(B, 3, H, W\), got \(3, 1, 24, 24\)"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_fails_at_once_with_a_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ----- the shipped models ------------------------------------------------------------------------------------------
def captions(ids):
    rows = [row[:row.index(TOK.eos_id)] if TOK.eos_id in row else row for row in ids[:, 1:].tolist()]
    return [TOK.decode(row) for row in rows]


def test_magic_captions_describe_their_images_with_the_course_models():
    """gpt-shapes never saw an image; with clip-shapes steering it (k=5, alpha=0.1, beta=2, the paper's alpha and
    beta) its captions of 64 test scenes score CLIPScore 1.88 and CHAIR_s 0.47, against greedy's one caption for all
    (0.46 and 0.92); CLIP re-ranking of 8 sampled captions per image lands in between (measured on a 2-core CPU,
    ~3 s in all)."""
    lm, clip = zoo.load("gpt-shapes"), zoo.load("clip-shapes")
    world = clip_shapes.world()
    scenes = world.scenes(64, "test")
    images = to_tensor(world.render_batch(scenes))
    start = torch.full((len(scenes), 1), TOK.bos_id)
    plain = captions(greedy(lm, start, 30, eos_token_id=TOK.eos_id))
    magic = captions(magic_search(lm, clip, images, start, 30, k=5, alpha=0.1, beta=2.0, eos_token_id=TOK.eos_id))
    drawn = sample(lm, start.repeat_interleave(8, 0), 30, torch.Generator().manual_seed(0), eos_token_id=TOK.eos_id)
    pool = captions(drawn)
    reranked, _ = clip_rerank(clip, TOK, images, [pool[8 * b:8 * b + 8] for b in range(len(scenes))])
    score = {name: clip_score(clip, images, texts).mean().item()
             for name, texts in (("greedy", plain), ("magic", magic), ("rerank", reranked))}
    chair_s = {name: chair(texts, scenes)[1] for name, texts in (("greedy", plain), ("magic", magic))}
    print(f"CLIPScore {score}; CHAIR_s {chair_s}")
    assert len(set(plain)) == 1 and len(set(magic)) > 32, "greedy ignores the image; MAGIC reads it"
    assert score["magic"] >= 1.5 > 3 * score["greedy"] and score["rerank"] > 2 * score["greedy"]
    assert chair_s["magic"] <= 0.6 < chair_s["greedy"]
