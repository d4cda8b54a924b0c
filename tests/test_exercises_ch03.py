"""Chapter 03's checkers accept a right answer and reject the usual wrong ones, naming the mistake; the block
exercise gets the block's parts, not a block that computes the answer itself. The stub, crash and wrong-type
checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch03


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def feed_forward(x, W1, b1, W2, b2):
    return torch.clamp(x @ W1 + b1, min=0) @ W2 + b2


def block_forward(block, x):
    x = x + block.attn(block.norm1(x), is_causal=True)
    return x + block.ffn(block.norm2(x))


def cached_attention(q, k, v, past_k, past_v):
    k_all, v_all = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_all, (k_all, v_all)


SOLUTIONS = {ch03.check_layer_norm: layer_norm, ch03.check_feed_forward: feed_forward,
             ch03.check_block_forward: block_forward, ch03.check_cached_attention: cached_attention}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def cache_on_the_wrong_dim(q, k, v, past_k, past_v):
    k_all, v_all = torch.cat([past_k, k], dim=-1), torch.cat([past_v, v], dim=-1)
    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v_all, (k_all, v_all)


def post_ln(block, x):
    h = block.norm1(x + block.attn(x, is_causal=True))
    return block.norm2(h + block.ffn(h))


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch03.check_layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(
        x.var(-1, keepdim=True) + eps) * g + b, "likely mistake: the unbiased variance"),
    (ch03.check_layer_norm, lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / (
        x.std(-1, unbiased=False, keepdim=True) + eps) * g + b, "likely mistake: eps added outside the square root"),
    (ch03.check_layer_norm, lambda x, g, b, eps=1e-5: layer_norm(x, 1.0, 0.0, eps), "likely mistake: forgot gamma"),
    (ch03.check_layer_norm, lambda x, g, b, eps=1e-5: layer_norm(x, g, b, eps)[..., :-1], "shape mismatch"),
    (ch03.check_feed_forward, lambda x, W1, b1, W2, b2: (x @ W1 + b1) @ W2 + b2, "likely mistake: no ReLU"),
    (ch03.check_feed_forward, lambda x, W1, b1, W2, b2: torch.relu(feed_forward(x, W1, b1, W2, b2)),
     "likely mistake: a ReLU after the second layer too"),
    (ch03.check_feed_forward, lambda x, W1, b1, W2, b2: torch.relu(W1 @ x + b1) @ W2 + b2,
     "hint: x is (..., d_model) and W1 (d_model, d_ff): multiply x @ W1"),
    (ch03.check_block_forward, post_ln, "likely mistake: post-LN"),
    (ch03.check_block_forward, lambda block, x: (lambda h: h + block.ffn(block.norm2(h)))(
        x + block.attn(block.norm1(x))), "likely mistake: attention without is_causal=True"),
    (ch03.check_block_forward, lambda block, x: (lambda a: a + block.ffn(block.norm2(a)))(
        block.attn(block.norm1(x), is_causal=True)),
     "likely mistake: forgot the residual around attention"),
    (ch03.check_block_forward, lambda block, x: block.attn(block.norm1(x), causal=True),
     "hint: block.attn is a MultiHeadAttention: call it as block.attn(h, is_causal=True)"),
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


def test_block_forward_gets_the_parts_not_a_block_that_computes_the_answer(capsys):
    assert not ch03.check_block_forward(lambda block, x: block(x))
    assert not ch03.check_block_forward(lambda block, x: block.forward(x))
    out = capsys.readouterr().out
    assert out.count("raised RuntimeError: use the sub-modules: block_forward builds the block's forward") == 6
    seen = []
    ch03.check_block_forward(lambda block, x: seen.append(block) or block_forward(block, x))
    assert {name for name, _ in seen[0].named_children()} == {"norm1", "attn", "norm2", "ffn"}
    assert not isinstance(seen[0], ch03.Block)
