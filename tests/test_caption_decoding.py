"""vitlib.recipes.caption_decoding (chapter 10's decoding table): every strategy gives one caption per image; the
oracles (VCD with a = 0 is greedy, MAGIC with alpha = beta = 0 is gpt-shapes' greedy, re-ranking is clip_rerank
over its pool); scoring equals the metrics by hand; the validation rule on a hand-made grid; the whole table on a
few scenes; the bad-input table. A tiny captioner trained for 150 steps stands in for the shipped one (~3 s); the
last test checks the shipped table against the shipped captioner-shapes-pooled.
"""

import math

import pytest
import torch

from vitlib.captioner import CaptionerConfig
from vitlib.decoding import greedy
from vitlib.guided_decoding import clip_rerank
from vitlib.metrics import bleu, clip_score
from vitlib.recipes import caption_decoding as cd
from vitlib.recipes import captioner_shapes

TOK = captioner_shapes.world().tokenizer


@pytest.fixture(scope="module")
def captioner():
    torch.set_num_threads(1)
    cfg = CaptionerConfig(vocab_size=TOK.vocab_size, max_len=40, d_model=32, n_heads=2, n_layers=1, d_image=64)
    model, _ = captioner_shapes.train(steps=150, n_train=512, batch_size=32, lr=3e-3, cfg=cfg, eval_every=None,
                                      progress=False)
    return model


@pytest.fixture(scope="module")
def test_split():
    return cd.split_data("test", 6)


def test_every_strategy_gives_one_caption_per_image(captioner, test_split):
    _, tokens, renders = test_split
    out = {name: cd.run_strategy(name, captioner, tokens, renders) for name in cd.STRATEGIES}
    for name, texts in out.items():
        assert isinstance(texts, list) and len(texts) == 6 and all(isinstance(t, str) for t in texts), name
    assert cd.run_strategy("top_p", captioner, tokens, renders, seed=0) == out["top_p"], "a seed fixes the draws"
    assert cd.run_strategy("top_p", captioner, tokens, renders, seed=1) != out["top_p"]
    # re-ranking: clip_rerank over {greedy, beam, 8 top-p draws} per image, rebuilt here
    drawn = cd.run_strategy("top_p", captioner, tokens.repeat_interleave(8, 0), renders.repeat_interleave(8, 0))
    pool = [[out["greedy"][i], out["beam"][i], *drawn[8 * i:8 * i + 8]] for i in range(6)]
    assert out["clip_rerank"] == clip_rerank(cd.course_models()[0], TOK, renders, pool)[0]
    assert out["negclip_rerank"] == clip_rerank(cd.course_models()[2], TOK, renders, pool)[0], "NegCLIP guides"


def test_vcd_without_contrast_is_greedy(captioner, test_split):
    _, tokens, renders = test_split
    plain = cd.run_strategy("greedy", captioner, tokens, renders)
    assert cd.run_strategy("vcd", captioner, tokens, renders, a=0.0, noise_step=900) == plain, \
        "a = 0: l_cd = l(y | V), and the beta cut always keeps the argmax"


def test_magic_without_penalty_or_clip_is_greedy_gpt_shapes(captioner, test_split):
    _, tokens, renders = test_split
    ids = greedy(cd.course_models()[1], torch.full((6, 1), TOK.bos_id), cd.MAX_NEW_TOKENS, eos_token_id=TOK.eos_id)
    expected = [TOK.decode(row[:row.index(TOK.eos_id)] if TOK.eos_id in row else row) for row in ids[:, 1:].tolist()]
    assert cd.run_strategy("magic", captioner, tokens, renders, alpha=0.0, beta=0.0) == expected
    assert cd.run_strategy("magic", captioner, tokens, renders) != expected, "with CLIP, MAGIC reads the image"


def test_score_equals_the_metrics_by_hand():
    scenes, _, renders = cd.split_data("test", 3)
    guess = {("blue", "square"), ("red", "circle")}
    assert guess - scenes[1].pairs(), "scene 1 must lack one of the guessed objects for this test"
    captions = [captioner_shapes.references(scenes[:1])[0][0],     # a true caption of scene 0
                "there is a blue square and a red circle.",         # a guess about scene 1
                "square blue a."]                                    # names nothing, and does not parse
    hallucinated = len(guess - scenes[1].pairs())
    got = cd.score(captions, scenes, renders)
    assert got["chair_i"] == hallucinated / (len(scenes[0].pairs()) + 2) and got["chair_s"] == 1 / 3
    assert got["parse_rate"] == 2 / 3
    assert got["bleu"] == bleu(captions, captioner_shapes.references(scenes))
    assert got["clip_score"] == clip_score(cd.course_models()[0], renders, captions).mean().item()
    nothing = cd.score(["square blue a."], scenes[:1], renders[:1])
    assert nothing["chair_i"] is None and nothing["chair_s"] == 0.0, "CHAIR_i of no mention is 0/0"


def test_selection_follows_the_documented_rule():
    rows = [{"settings": "a", "bleu": 50.0, "chair_i": 0.20},
            {"settings": "b", "bleu": 48.5, "chair_i": 0.10},   # within 2 points of greedy's 50: lowest CHAIR_i
            {"settings": "c", "bleu": 47.9, "chair_i": 0.01},   # lower CHAIR_i, but 2.1 points below greedy
            {"settings": "d", "bleu": 49.0, "chair_i": 0.10}]   # ties b on CHAIR_i with a higher BLEU
    assert cd.select(rows, 50.0)["settings"] == "d"
    assert cd.select(rows[:3], 50.0)["settings"] == "b"
    assert cd.select(rows[2:3] + [{"settings": "e", "bleu": 40.0, "chair_i": 0.0}], 50.0)["settings"] == "c", \
        "none within 2 points: the highest BLEU"
    assert cd.select([{"settings": "f", "bleu": 50.0, "chair_i": None}] + rows[:1], 50.0)["settings"] == "a"
    assert cd.select(rows, 52.0, slack=4.2)["settings"] == "c", "a wider slack admits c"


def test_grid_and_mean_sd_by_hand():
    assert cd.grid({"a": (1, 2), "b": (3,)}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert len(cd.grid(cd.GRIDS["magic"])) == 12 and len(cd.grid(cd.GRIDS["vcd"])) == 6
    runs = [{"bleu": b, "clip_score": 1.0, "chair_i": c, "chair_s": 0.5, "parse_rate": 1.0, "seconds": 2.0,
             "partner_given_trigger_only": {"rate": r}} for b, c, r in ((40.0, 0.2, 0.5), (44.0, None, 0.7))]
    out = cd.mean_sd(runs)
    assert out["mean"]["bleu"] == 42.0 and out["sd"]["bleu"] == pytest.approx(math.sqrt(8))
    assert out["mean"]["chair_i"] == 0.2 and out["sd"]["chair_i"] == 0.0, "an undefined CHAIR_i is left out"
    assert out["mean"]["partner_given_trigger_only"] == pytest.approx(0.6)


def test_check_is_reproducible_and_disagreements_are_caught(captioner):
    stored = cd.check(captioner, {"a": 1.0, "noise_step": 500}, n=8)
    assert cd.disagreements(stored, cd.check(captioner, {"a": 1.0, "noise_step": 500}, n=8)) == []
    assert set(stored["captions"]) == {"greedy", "vcd"} and len(stored["captions"]["vcd"]) == 8
    moved = {"captions": {k: list(v) for k, v in stored["captions"].items()},
             "metrics": {k: dict(v) for k, v in stored["metrics"].items()}}
    moved["captions"]["vcd"][0] += " and a red circle."         # 7 of 8 equal: below 95%
    moved["metrics"]["greedy"]["bleu"] += 2.5                     # beyond 2 BLEU points
    moved["metrics"]["greedy"]["chair_s"] += 0.01                 # within 0.02
    problems = cd.disagreements(stored, moved)
    assert len(problems) == 2 and any("vcd: 88%" in p for p in problems) and any("greedy bleu" in p for p in problems)


def test_the_whole_table_on_a_few_scenes(captioner):
    grids = {"magic": {"k": (5,), "alpha": (0.1,), "beta": (0.0, 2.0)}, "vcd": {"a": (0.0, 1.0), "noise_step": (500,)}}
    out = cd.run(captioner, n_test=8, n_val=8, n_trigger=5, seeds=(0, 1), grids=grids)
    val, table = out["validation"], out["test"]
    for name in grids:
        assert len(val[name]["grid"]) == 2
        assert val[name]["chosen"] == cd.select(val[name]["grid"], val["greedy"]["bleu"])["settings"]
        assert table[name]["settings"] == val[name]["chosen"], "the test set runs the validation's choice"
    assert set(table) == set(cd.STRATEGIES) and set(out["target"]) == set(cd.GUIDED)
    for name in ("top_p", "clip_rerank", "negclip_rerank", "vcd"):
        assert [r["partner_given_trigger_only"]["n"] for r in table[name]["runs"]] == [5, 5], name
        assert set(table[name]["mean"]) == {*cd.METRICS, "seconds", "partner_given_trigger_only"}
    assert table["greedy"]["partner_given_trigger_only"]["n"] == 5 and table["beam"]["seconds"] > 0


def _small():
    return cd.split_data("test", 3)


BAD = [
    (lambda m: cd.run_strategy("nucleus", m, _small()[1], _small()[2]), ValueError, r"unknown strategy 'nucleus'"),
    (lambda m: cd.run_strategy("greedy", m, _small()[1][:0], _small()[2][:0]), ValueError, r"batch, S >= 1"),
    (lambda m: cd.run_strategy("greedy", m, _small()[1], _small()[2][:2]), ValueError, r"same images, got 3 and 2"),
    (lambda m: cd.run_strategy("greedy", m, _small()[1], _small()[2][:, :1]), ValueError, r"\(B, 3, H, W\)"),
    (lambda m: cd.run_strategy("greedy", m, _small()[1], _small()[2].byte()), TypeError, r"must be a float tensor"),
    (lambda m: cd.run_strategy("greedy", "captioner", _small()[1], _small()[2]), TypeError, r"got str"),
    (lambda m: cd.run_strategy("greedy", m, _small()[1], _small()[2], k=5), ValueError,
     r"unknown settings \['k'\] for greedy; allowed: none"),
    (lambda m: cd.run_strategy("vcd", m, _small()[1], _small()[2], alpha=1.0), ValueError,
     r"\['alpha'\] for vcd; allowed: a, beta, noise_step, seed"),
    (lambda m: cd.run_strategy("top_p", m, _small()[1], _small()[2], seed=-1), ValueError, r"seed must be an int >="),
    (lambda m: cd.run_strategy("top_p", m, _small()[1], _small()[2], top_p=1.5), ValueError, r"top_p must be in"),
    (lambda m: cd.run_strategy("vcd", m, _small()[1], _small()[2], noise_step=1000), ValueError, r"at most 999"),
    (lambda m: cd.run_strategy("vcd", m, _small()[1], _small()[2], a=-1.0), ValueError, r"a must be >= 0\.0"),
    (lambda m: cd.run_strategy("magic", m, _small()[1], _small()[2], k=0), ValueError, r"k must be a positive int"),
    (lambda m: cd.run_strategy("clip_rerank", m, _small()[1], _small()[2], n_samples=0), ValueError, r"n_samples"),
    (lambda m: cd.score(["a red circle."] * 2, _small()[0], _small()[2]), ValueError,
     r"pair up, got 2 captions, 3 scenes and 3 renders"),
    (lambda m: cd.score(["a red circle."] * 3, [], _small()[2]), ValueError, r"got 3 captions, 0 scenes and 3"),
    (lambda m: cd.score([], [], _small()[2][:0]), ValueError, r"captions must be a non-empty list of str"),
    (lambda m: cd.score("a red circle.", _small()[0][:1], _small()[2][:1]), ValueError, r"non-empty list of str"),
    (lambda m: cd.select([], 50.0), ValueError, r"rows must be a non-empty list"),
    (lambda m: cd.select([{"bleu": 1.0}], 50.0), ValueError, r"rows\[0\] must be a dict with 'bleu' and 'chair_i'"),
    (lambda m: cd.select([{"bleu": 1.0, "chair_i": 0.1}], math.nan), ValueError, r"greedy_bleu must be finite"),
    (lambda m: cd.grid({"a": 1}), ValueError, r"non-empty dict of setting -> non-empty tuple"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_fails_at_once_with_a_message(captioner, call, error, message):
    with pytest.raises(error, match=message):
        call(captioner)


@pytest.mark.slow
def test_shipped_table():
    """data/results/caption-decoding.json: made from the shipped pooled captioner, every strategy on >= 500 test
    scenes, the stochastic ones over >= 3 seeds, the validation choices follow ``select``, the target verdicts
    follow the table; its check (greedy and the chosen VCD on 40 test scenes) is recomputed: equal captions on
    >= 95% of the scenes, metrics within 0.02 (BLEU: 2 points)."""
    import json

    from vitlib import zoo
    from vitlib.recipes import results_json

    torch.set_num_threads(1)
    command = "python -m vitlib.recipes.caption_decoding --save"
    path = results_json.path(cd.NAME)
    assert path.exists(), f"{path} is missing: `{command}` writes it"
    results = results_json.load(cd.NAME)
    settings, out = results["settings"], results["results"]
    assert results["command"].startswith("python -m vitlib.recipes.caption_decoding"), results["command"]
    assert settings["captioner"] == cd.CAPTIONER
    assert settings["captioner_sha256"] == zoo.load_config(cd.CAPTIONER)["sha256"], \
        f"{cd.CAPTIONER} was retrained after the table was made: rerun `{command}`"
    assert settings["n_test"] >= 500 and len(settings["seeds"]) >= 3
    assert settings["grids"] == json.loads(json.dumps(cd.GRIDS)), "JSON keeps the grids' tuples as lists"
    val, table = out["validation"], out["test"]
    assert set(table) == set(cd.STRATEGIES)
    for name in cd.GRIDS:
        assert val[name]["chosen"] == cd.select(val[name]["grid"], val["greedy"]["bleu"])["settings"], name
        assert table[name]["settings"] == val[name]["chosen"]
    for name in ("top_p", "clip_rerank", "negclip_rerank", "vcd"):
        assert len(table[name]["runs"]) == len(settings["seeds"]), name
        runs = [r["chair_i"] for r in table[name]["runs"]]
        assert abs(table[name]["mean"]["chair_i"] - sum(runs) / len(runs)) < 1e-9, name
    assert out["target"] == json.loads(json.dumps(cd.target({k: v.get("mean", v) for k, v in table.items()})))
    stored = out["check"]
    again = cd.check(zoo.load(cd.CAPTIONER), stored["vcd"], stored["n"])
    assert cd.disagreements(stored, again) == []
