"""Chapter 03's experiments: position variants of the GPT, the scene check of sampled captions, and the shipped
multi-seed results, of which a cheap part is recomputed here."""

import pytest
import torch

from vitlib.position_variants import POSITION_MODES, SINUSOIDAL_RMS, gpt_with_positions
from vitlib.recipes import gpt_finetune, gpt_positions, gpt_shapes, results_json
from vitlib.transformer import GPTConfig

CONFIG = GPTConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_len=12)


@pytest.mark.parametrize("mode", POSITION_MODES)
def test_every_mode_caches_keys_and_values_exactly(mode):
    torch.manual_seed(0)
    m, ids = gpt_with_positions(CONFIG, mode).eval(), torch.randint(0, 20, (2, 7))
    _, cache = m(ids[:, :5], use_cache=True)
    step, _ = m(ids[:, 5:6], past_kv=cache, use_cache=True)
    torch.testing.assert_close(step[:, -1], m(ids)[:, 5], atol=1e-5, rtol=0)


def test_the_modes_differ_only_where_positions_enter():
    models = {}
    for mode in POSITION_MODES:
        torch.manual_seed(0)
        models[mode] = gpt_with_positions(CONFIG, mode)
    table = {mode: m.transformer.pos_emb.weight for mode, m in models.items()}
    assert table["none"].abs().max() == 0 and not table["none"].requires_grad and table["learned"].requires_grad
    assert abs(table["sinusoidal"].pow(2).mean().sqrt().item() - SINUSOIDAL_RMS) < 1e-6
    torch.testing.assert_close(models["rope"].transformer.blocks[0].attn.q_proj.weight,
                               models["learned"].transformer.blocks[0].attn.q_proj.weight)


def test_without_positions_one_layer_ignores_the_order_before_the_last_token_and_two_do_not():
    ids = torch.randint(0, 20, (1, 8), generator=torch.Generator().manual_seed(0))
    shuffled = torch.cat([ids[:, :-1].flip(1), ids[:, -1:]], dim=1)
    gaps = []
    for n_layers in (1, 2):
        torch.manual_seed(0)
        m = gpt_with_positions(GPTConfig(vocab_size=20, d_model=16, n_layers=n_layers, n_heads=2, max_len=12),
                               "none").eval()
        gaps.append((m(shuffled)[:, -1] - m(ids)[:, -1]).abs().max().item())
    assert gaps[0] < 1e-5 < 1e-4 < gaps[1]


@pytest.mark.parametrize("call, error, message", [
    (lambda: gpt_with_positions(CONFIG, "alibi"), ValueError, r"unknown position mode 'alibi'; allowed: none"),
    (lambda: gpt_with_positions({"d_model": 16}, "none"), TypeError, r"expects a GPTConfig, got dict"),
    (lambda: gpt_shapes.caption_objects(3), TypeError, r"text must be a caption \(str\), got int"),
])
def test_bad_input_names_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("text, problem", [
    ("a red circle at the top left and a blue square on the right.", None),
    ("there is a red circle and a red circle.", "repeated colour+shape"),
    ("at the top there is a red circle. at the top there is a blue square.", "two objects in one cell"),
    ("two objects: a red circle at the top and a blue cross at the top.", "two objects in one cell"),
    ("a red circle and.", "not a caption"),
])
def test_scene_problem(text, problem):
    assert gpt_shapes.scene_problem(text) == problem
    assert gpt_shapes.valid_scene_rate([text]) == (1, int(problem != "not a caption"), int(problem is None))


def test_shipped_results_hold_every_run_and_their_command():
    positions, finetune = results_json.load(gpt_positions.NAME), results_json.load(gpt_finetune.NAME)
    assert positions["command"].startswith("python -m vitlib.recipes.gpt_positions")
    assert finetune["command"].startswith("python -m vitlib.recipes.gpt_finetune")
    assert sorted((r["mode"], r["seed"]) for r in positions["results"]["runs"]) == sorted(
        (m, s) for m in POSITION_MODES for s in gpt_positions.SEEDS)
    assert sorted((r["init"], r["seed"]) for r in finetune["results"]["finetune"]) == sorted(
        (i, s) for i in gpt_finetune.INITS for s in gpt_finetune.SEEDS)
    assert {(r["steps"], r["seed"]) for r in finetune["results"]["pretrain"]} == {
        (s, seed) for s in gpt_finetune.PRETRAIN_STEPS for seed in gpt_finetune.SEEDS}


def test_a_cheap_part_of_the_shipped_results_is_recomputed():
    torch.set_num_threads(1)
    stored = results_json.load(gpt_positions.NAME)["results"]["check"]
    again = gpt_positions.run_one(**gpt_positions.CHECK)
    assert again["steps"] == stored["steps"]
    assert again["val_loss"] == pytest.approx(stored["val_loss"], rel=1e-3)
    stored = results_json.load(gpt_finetune.NAME)["results"]["check"]
    again = gpt_finetune.run_one(**gpt_finetune.CHECK)
    for split in ("val", "test"):   # sampled answers: a CPU's rounding may flip a draw or two
        for a, b in zip(again[split], stored[split]):
            assert abs(a["right"] - b["right"]) <= 3 and abs(a["new_right"] - b["new_right"]) <= 3
