"""Chapter 03's checkers accept a right answer and reject the usual wrong ones."""

import math

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


def test_checkers_accept_correct_solutions():
    assert ch03.check_layer_norm(layer_norm)
    assert ch03.check_feed_forward(feed_forward)
    assert ch03.check_block_forward(block_forward)
    assert ch03.check_cached_attention(cached_attention)


def test_checkers_reject_wrong_solutions(capsys):
    unbiased = lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * g + b  # noqa: E731
    eps_outside = lambda x, g, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + eps) * g + b  # noqa: E731
    assert not ch03.check_layer_norm(unbiased)
    assert not ch03.check_layer_norm(eps_outside)
    assert not ch03.check_layer_norm(lambda x, g, b, eps=1e-5: layer_norm(x, g, b, eps)[..., :-1])
    assert not ch03.check_feed_forward(lambda x, W1, b1, W2, b2: (x @ W1 + b1) @ W2 + b2)  # no ReLU
    assert not ch03.check_block_forward(lambda block, x: block.norm2(
        block.norm1(x + block.attn(x, is_causal=True)) + block.ffn(block.norm1(x + block.attn(x, is_causal=True)))))
    assert not ch03.check_block_forward(lambda block, x: (lambda h: h + block.ffn(block.norm2(h)))(
        x + block.attn(block.norm1(x))))  # forgot the causal mask
    assert not ch03.check_cached_attention(lambda q, k, v, pk, pv: (  # attends to the past only
        torch.softmax(q @ pk.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ pv, (pk, pv)))
    assert not ch03.check_cached_attention(lambda q, k, v, pk, pv: cached_attention(q, k, v, pk, pv)[0])
    out = capsys.readouterr().out
    assert "shape mismatch" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch03.check_layer_norm(stub)
    assert "not implemented yet" in capsys.readouterr().out
