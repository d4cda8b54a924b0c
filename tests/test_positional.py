"""Positional encodings (vitlib.positional) against independent formulas, complex numbers and transformers' Llama."""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from vitlib.positional import LearnedPositionalEmbedding, apply_rope, frequencies, sinusoidal_encoding


def test_sinusoidal_matches_the_formula_written_out():
    T, d = 50, 16
    pe = sinusoidal_encoding(T, d)
    assert pe.shape == (T, d) and pe.dtype == torch.float32
    for pos in range(T):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert abs(pe[pos, 2 * i].item() - math.sin(angle)) < 1e-6
            assert abs(pe[pos, 2 * i + 1].item() - math.cos(angle)) < 1e-6


def test_sinusoidal_dot_products_depend_on_the_offset_only():
    pe = sinusoidal_encoding(64, 32).double()
    gram = pe @ pe.T                                                     # (T, T)
    for k in range(-10, 11):
        diagonal = torch.diagonal(gram, offset=k)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-5, rtol=0)


def test_learned_positional_embedding_adds_its_rows():
    torch.manual_seed(0)
    pos = LearnedPositionalEmbedding(10, 4)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(pos(x), x + pos.weight[:3])
    torch.testing.assert_close(pos(x, offset=7), x + pos.weight[7:10])
    pos(x).sum().backward()
    assert torch.equal(pos.weight.grad[:3], torch.full((3, 4), 2.0)) and pos.weight.grad[3:].abs().sum() == 0
    with pytest.raises(ValueError, match="outside the table"):
        pos(x, offset=8)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 4\)"):
        pos(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="max_len"):
        LearnedPositionalEmbedding(0, 4)


def rope_complex(x, positions, base=10000.0):
    """RoPE as Su et al. write it: each pair is a complex number z, multiplied by e^(i m theta)."""
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2).contiguous())   # (..., T, d/2)
    theta = base ** (-torch.arange(0, x.shape[-1], 2, dtype=torch.float64) / x.shape[-1])
    rotation = torch.polar(torch.ones_like(theta), positions.double()[..., None] * theta)  # e^(i m theta)
    return torch.view_as_real(z * rotation).reshape(x.shape)


def test_rope_matches_complex_multiplication():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 16, dtype=torch.float64)
    positions = torch.arange(20) * 3 + 5
    torch.testing.assert_close(apply_rope(x, positions), rope_complex(x, positions), atol=1e-12, rtol=0)


def test_rope_matches_llama_after_a_feature_permutation():
    """Llama pairs feature i with i + d/2 (rotate_half); the paper pairs 2i with 2i+1. Putting the even features
    first and the odd ones after turns one convention into the other."""
    B, H, T, D = 2, 4, 33, 16
    config = LlamaConfig(hidden_size=H * D, num_attention_heads=H, head_dim=D)
    rotary = LlamaRotaryEmbedding(config=config)
    torch.manual_seed(0)
    q, k = torch.randn(B, H, T, D), torch.randn(B, H, T, D)
    position_ids = torch.arange(T)[None].expand(B, T)
    cos, sin = rotary(q, position_ids)
    perm = torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])   # even features, then odd ones
    q_llama, k_llama = apply_rotary_pos_emb(q[..., perm], k[..., perm], cos, sin)
    torch.testing.assert_close(apply_rope(q, torch.arange(T))[..., perm], q_llama, atol=1e-5, rtol=0)
    torch.testing.assert_close(apply_rope(k, position_ids[:, None])[..., perm], k_llama, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotary.inv_freq.double(), frequencies(D), atol=1e-7, rtol=1e-6)


def test_rope_scores_depend_on_relative_position_only():
    torch.manual_seed(0)
    q, k = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)

    def score(m, n):
        return apply_rope(q[None], torch.tensor([m])) @ apply_rope(k[None], torch.tensor([n]))[0]

    for offset in (-7, 0, 3, 40):
        scores = torch.cat([score(m, m - offset) for m in range(max(offset, 0), max(offset, 0) + 100, 9)])
        assert (scores - scores[0]).abs().max() < 1e-5
    assert abs(score(10, 10).item() - (q @ k).item()) < 1e-10


def test_rope_rotates_pairs_keeping_their_length():
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    y = apply_rope(x, torch.arange(5))
    torch.testing.assert_close(y[0], x[0])                                # position 0 is not rotated
    norms = lambda t: t.reshape(5, 4, 2).norm(dim=-1)
    torch.testing.assert_close(norms(y), norms(x))
    # d = 2 rotates by exactly m radians: (1, 0) at position m goes to (cos m, sin m)
    torch.testing.assert_close(apply_rope(torch.tensor([[1.0, 0.0]]), torch.tensor([2])),
                               torch.tensor([[math.cos(2), math.sin(2)]]))


def test_rope_float32_stays_accurate_at_long_positions():
    torch.manual_seed(0)
    x = torch.randn(4096, 32, dtype=torch.float64)
    exact = apply_rope(x, torch.arange(4096))
    torch.testing.assert_close(apply_rope(x.float(), torch.arange(4096)).double(), exact, atol=1e-5, rtol=0)


def test_rope_bad_input():
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match="broadcast"):
        apply_rope(torch.randn(3, 4), torch.arange(4))
    with pytest.raises(ValueError, match="broadcast"):
        apply_rope(torch.randn(3, 4), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="floating"):
        apply_rope(torch.ones(3, 4, dtype=torch.long), torch.arange(3))
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_encoding(4, 3)


@pytest.mark.parametrize("base", [0.0, -2.0, float("nan")])
def test_a_base_that_gives_no_angles_is_refused(base):
    """base <= 0 (or NaN) made the tables NaN (0 ** -x = inf, a negative number to a fractional power) without a
    word; the frequencies, the sinusoidal table and RoPE share the check."""
    for call in (lambda: frequencies(4, base), lambda: sinusoidal_encoding(8, 4, base),
                 lambda: apply_rope(torch.randn(3, 4), torch.arange(3), base)):
        with pytest.raises(ValueError, match=rf"base must be > 0.0, got {base}"):
            call()


def test_sizes_are_ints_within_reach():
    with pytest.raises(ValueError, match="max_len must be a positive int, got True"):   # gave a one-row table
        sinusoidal_encoding(True, 4)
    with pytest.raises(ValueError, match="max_len must be at most 1048576, got 2147483648"):   # ran for minutes
        sinusoidal_encoding(2**31, 4)
