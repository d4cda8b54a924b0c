"""Chapter 03's checkers accept a right answer and reject the usual wrong ones, naming the mistake; the post-LN
exercise gets the block's parts, not a block that computes the answer itself. The stub, crash and wrong-type
checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch03


def count(vocab_size, max_len, d_model, n_layers):
    d = d_model
    per_block = (4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d    # attention, FFN, two LayerNorms
    return vocab_size * d + max_len * d + n_layers * per_block + 2 * d


def post_ln_forward(block, x):
    h = block.norm1(x + block.attn(x, is_causal=True))
    return block.norm2(h + block.ffn(h))


def order_gap(model, ids):
    reordered = torch.cat([ids[:, :-1].flip(1), ids[:, -1:]], dim=1)
    return (model(reordered)[:, -1] - model(ids)[:, -1]).abs().max().item()


def cached_attention(q, k, v, past_k, past_v):
    k_all, v_all = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_all, (k_all, v_all)


SOLUTIONS = {ch03.check_gpt_parameter_count: count, ch03.check_post_ln_forward: post_ln_forward,
             ch03.check_order_gap: order_gap, ch03.check_cached_attention: cached_attention}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_gpt2_small_has_124_439_808_parameters():
    assert count(50257, 1024, 768, 12) == ch03.gpt_parameter_count(50257, 1024, 768, 12) == 124_439_808


def cache_on_the_wrong_dim(q, k, v, past_k, past_v):
    k_all, v_all = torch.cat([past_k, k], dim=-1), torch.cat([past_v, v], dim=-1)
    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_all, (k_all, v_all)


def pre_ln(block, x):
    x = x + block.attn(block.norm1(x), is_causal=True)
    return x + block.ffn(block.norm2(x))


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch03.check_gpt_parameter_count, lambda V, T, d, L: count(V, T, d, L) - T * d,
     "likely mistake: forgot the position table"),
    (ch03.check_gpt_parameter_count, lambda V, T, d, L: count(V, T, d, L) + V * d,
     "likely mistake: counted the output head separately"),
    (ch03.check_gpt_parameter_count, lambda V, T, d, L: count(V, T, d, L) - 9 * L * d,
     "likely mistake: forgot the biases"),
    (ch03.check_gpt_parameter_count, lambda V, T, d, L: count(V, T, d, L) - (4 * L + 2) * d,
     "likely mistake: forgot the LayerNorms"),
    (ch03.check_post_ln_forward, pre_ln, "likely mistake: pre-LN, the course's block"),
    (ch03.check_post_ln_forward, lambda block, x: (lambda h: h + block.ffn(h))(
        block.norm1(x + block.attn(x, is_causal=True))), "likely mistake: forgot the second LayerNorm"),
    (ch03.check_post_ln_forward, lambda block, x: (lambda h: block.norm2(h + block.ffn(h)))(
        block.norm1(x + block.attn(block.norm1(x), is_causal=True))),
     "likely mistake: the LayerNorm inside the residual too"),
    (ch03.check_order_gap, lambda m, ids: (m(ids.flip(1))[:, -1] - m(ids)[:, -1]).abs().max().item(),
     "likely mistake: reversed the last token too"),
    (ch03.check_order_gap, lambda m, ids: (m(torch.cat([ids[:, :-1].flip(1), ids[:, -1:]], 1)) - m(ids)).abs()
     .max().item(), "likely mistake: compared every position"),
    (ch03.check_cached_attention, lambda q, k, v, pk, pv: (  # attends to the past only
        torch.softmax(q @ pk.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ pv, (pk, pv)),
     "likely mistake: attended to the cached tokens only"),
    (ch03.check_cached_attention, lambda q, k, v, pk, pv: cached_attention(q, k, v, pk, pv)[0],
     "likely mistake: returned only the output"),
    (ch03.check_cached_attention, lambda q, k, v, pk, pv: cached_attention(pk, pv, q, k, v) and
     cached_attention(q, pk, pv, k, v), "likely mistake: cache grown at the front"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out


def test_a_kv_cache_concatenated_on_the_wrong_dim_gets_the_case_the_error_and_a_hint(capsys):
    assert not ch03.check_cached_attention(cache_on_the_wrong_dim)
    out = capsys.readouterr().out
    assert out.startswith("✗ cache_on_the_wrong_dim: 3 of 3 cases failed\n"
                          "  case 1 (B=1, H=1, 3 cached tokens, Dh=4): cache_on_the_wrong_dim(tensor(")
    assert "\n    raised RuntimeError: Sizes of tensors must match except in dimension 3." in out
    assert "\n    hint: the cache grows along the length: torch.cat([past_k, k], dim=2)" in out


def test_post_ln_forward_gets_the_parts_not_a_block_that_computes_the_answer(capsys):
    assert not ch03.check_post_ln_forward(lambda block, x: block(x))
    assert "raised RuntimeError: use the sub-modules" in capsys.readouterr().out
