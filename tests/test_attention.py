"""vitlib.attention equals PyTorch: F.scaled_dot_product_attention and nn.MultiheadAttention (chapter 02)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitlib.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

ATOL = 1e-6


def qkv(B=2, H=3, L=5, S=7, E=8, Ev=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, L, E, generator=g), torch.randn(B, H, S, E, generator=g),
            torch.randn(B, H, S, Ev, generator=g))


def masks(L=5, S=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    bool_mask = torch.rand(2, 1, L, S, generator=g) > 0.3
    bool_mask[..., 0] = True  # every query sees at least one key
    return {"none": None, "bool": bool_mask, "float": torch.randn(L, S, generator=g),
            "bool-with-empty-row": bool_mask.clone().index_fill_(2, torch.tensor([1]), False)}


@pytest.mark.parametrize("impl", ["naive", "fused"])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "bool-with-empty-row"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_matches_pytorch(impl, mask_kind, is_causal):
    q, k, v = qkv(L=6, S=6) if is_causal else qkv()
    mask = masks(*((6, 6) if is_causal else (5, 7)))[mask_kind]
    ours = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, impl=impl)
    if is_causal and mask is not None:  # PyTorch takes one or the other: fold the triangle in for the reference
        tri = causal_mask(6, 6)
        ref_mask = mask & tri if mask.dtype == torch.bool else torch.where(tri, mask, float("-inf"))
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    else:
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_causal_mask_alignment():
    assert causal_mask(3, 3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(1, 4).tolist() == [[True, False, False, False]], "top-left, as PyTorch's is_causal"
    assert causal_mask(1, 4, offset=3).tolist() == [[True] * 4], "the newest query sees every cached key"


@pytest.mark.parametrize("impl", ["naive", "fused"])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
@pytest.mark.parametrize("L, S", [(3, 7), (7, 3), (2, 5)])
def test_is_causal_with_more_or_fewer_keys_than_queries_matches_pytorch(impl, mask_kind, L, S):
    q, k, v = qkv(L=L, S=S)
    mask = masks(L, S)[mask_kind]
    ours = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True, impl=impl)
    tri = torch.ones(L, S, dtype=torch.bool).tril()  # PyTorch's own definition of is_causal
    if mask is None:
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        ref_mask = mask & tri if mask.dtype == torch.bool else torch.where(tri, mask, float("-inf"))
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def _loop_mask(L, S, shift):
    """(L, S) bool built entry by entry, independently of causal_mask: query i sees key j when j <= i + shift."""
    return torch.tensor([[j <= i + shift for j in range(S)] for i in range(L)])


@pytest.mark.parametrize("impl", ["naive", "fused"])
@pytest.mark.parametrize("L, S", [(1, 4), (2, 6), (3, 7), (5, 5)])
def test_causal_mask_with_fewer_queries_than_keys(impl, L, S):
    """causal_mask(L, S) is aligned to the top left (PyTorch's is_causal: query i sees keys 0..i); with
    offset=S - L it is aligned to the bottom right (the L queries are the last L of S positions, as with a KV
    cache: query i sits at position S - L + i). Each is tested against a mask built independently and against
    what it must compute."""
    q, k, v = qkv(L=S, S=S)                                     # S queries: the whole sequence
    top_left, bottom_right = causal_mask(L, S), causal_mask(L, S, offset=S - L)
    assert torch.equal(top_left, _loop_mask(L, S, 0)) and torch.equal(bottom_right, _loop_mask(L, S, S - L))
    assert bottom_right[-1].all(), "the newest query sees every key"
    assert torch.equal(top_left, bottom_right) == (L == S), "the two alignments differ exactly when L != S"
    new = q[..., S - L:, :]                                     # (B, H, L, E): the last L queries
    explicit = F.scaled_dot_product_attention(new, k, v, attn_mask=_loop_mask(L, S, S - L))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)[..., S - L:, :]   # (B, H, L, Ev)
    torch.testing.assert_close(explicit, full, atol=ATOL, rtol=0)   # the reference is what a cache must give
    torch.testing.assert_close(scaled_dot_product_attention(new, k, v, mask=bottom_right, impl=impl), full,
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(scaled_dot_product_attention(new, k, v, mask=top_left, impl=impl),
                               F.scaled_dot_product_attention(new, k, v, is_causal=True), atol=ATOL, rtol=0)


@pytest.mark.parametrize("L, S", [(1, 4), (2, 6), (3, 7), (7, 3)])
def test_causal_mask_alignments_are_pytorchs_upper_left_and_lower_right(L, S):
    bias = pytest.importorskip("torch.nn.attention.bias", reason="causal_upper_left/lower_right need torch >= 2.2")
    assert torch.equal(causal_mask(L, S), bias.causal_upper_left(L, S)._materialize())
    if L <= S:   # lower_right with more queries than keys leaves the first rows empty; a cache never has L > S
        assert torch.equal(causal_mask(L, S, offset=S - L), bias.causal_lower_right(L, S)._materialize())
    q, k, v = qkv(L=L, S=S)
    for impl in ("naive", "fused"):
        torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=causal_mask(L, S), impl=impl),
                                   F.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_upper_left(L, S)),
                                   atol=ATOL, rtol=0)


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_nan_inputs_stay_nan_and_empty_rows_are_zero_as_in_pytorch(impl):
    q, k, v = qkv(L=3, S=5)
    q[..., 0, 0] = float("nan")
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    ours = scaled_dot_product_attention(q, k, v, mask=mask, impl=impl)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert ours[..., 0, :].isnan().all(), "a NaN query must not be hidden as zeros"
    assert (ours[..., 1, :] == 0).all()
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0, equal_nan=True)


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_causal_mask_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="must be an int >= 0"):
        causal_mask(bad, 3)


def _copy_pair(cross: bool, seed: int):
    torch.manual_seed(seed)
    kdim = 12 if cross else None
    ref = nn.MultiheadAttention(16, 4, batch_first=True, kdim=kdim, vdim=kdim)
    with torch.no_grad():  # randomise the biases, which PyTorch initialises to zero
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    return ref, MultiHeadAttention.from_torch(ref)


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_mha_matches_nn_multihead_attention(cross, impl):
    ref, ours = _copy_pair(cross, seed=1)
    ours.impl = impl
    x = torch.randn(3, 5, 16)
    c = torch.randn(3, 9, 12) if cross else x
    keep = torch.ones(3, c.shape[1], dtype=torch.bool)
    keep[0, -3:] = False  # padding at the end of the first sequence
    expected, expected_w = ref(x, c, c, key_padding_mask=~keep, need_weights=True)
    got = ours(x, None if not cross else c, attention_mask=keep)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    got_w = ours(x, None if not cross else c, attention_mask=keep, need_weights=True)[1]
    torch.testing.assert_close(got_w, expected_w, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cross", [False, True])
def test_head_weights_match_nn_multihead_attention_per_head(cross):
    ref, ours = _copy_pair(cross, seed=4)
    x = torch.randn(2, 5, 16)
    c = torch.randn(2, 9, 12) if cross else x
    keep = torch.ones(2, c.shape[1], dtype=torch.bool)
    keep[1, -2:] = False
    _, expected = ref(x, c, c, key_padding_mask=~keep, need_weights=True, average_attn_weights=False)
    got = ours.head_weights(x, None if not cross else c, attention_mask=keep)
    assert got.shape == (2, 4, 5, c.shape[1])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.mean(dim=1), ours(x, None if not cross else c, attention_mask=keep,
                                                    need_weights=True)[1], atol=ATOL, rtol=0)
    causal = ours.head_weights(x, is_causal=True) if not cross else None
    if causal is not None:
        assert torch.all(causal.triu(diagonal=1) == 0), "a causal head puts weight on a future key"


def test_mha_causal_matches_nn_multihead_attention():
    ref, ours = _copy_pair(False, seed=2)
    x = torch.randn(2, 6, 16)
    expected, _ = ref(x, x, x, attn_mask=~causal_mask(6, 6), need_weights=False)
    torch.testing.assert_close(ours(x, is_causal=True), expected, atol=ATOL, rtol=0)


def test_kv_cache_gives_the_same_outputs_as_full_attention():
    _, mha = _copy_pair(False, seed=3)
    x = torch.randn(2, 7, 16)
    full = mha(x, is_causal=True)
    out, past = mha(x[:, :4], is_causal=True, use_cache=True)
    steps = [out]
    for t in range(4, 7):
        out, past = mha(x[:, t:t + 1], is_causal=True, past_kv=past, use_cache=True)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("args, message", [
    (lambda: (torch.randn(4), torch.randn(4, 4), torch.randn(4, 4)), "q must have shape"),
    (lambda: (torch.randn(2, 3, 8), torch.randn(2, 5, 6), torch.randn(2, 5, 6)), "feature sizes differ"),
    (lambda: (torch.randn(2, 3, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8)), "batch dimensions do not match"),
    (lambda: (torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 4, 8)), "same length"),
    (lambda: (torch.randn(2, 3, 8), torch.randn(2, 5, 8).double(), torch.randn(2, 5, 8)), "dtypes differ"),
])
def test_sdpa_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(*args())


def test_sdpa_bad_mask_and_impl():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be bool"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown impl 'flash'; allowed: naive, fused"):
        scaled_dot_product_attention(q, k, v, impl="flash")


def test_mha_bad_input():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=3"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, length, 16\), got \(2, 5, 8\)"):
        mha(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="context must have shape"):
        mha(torch.randn(2, 5, 16), torch.randn(3, 5, 16))
    with pytest.raises(ValueError, match=r"attention_mask must be a bool tensor of shape \(2, 5\)"):
        mha(torch.randn(2, 5, 16), attention_mask=torch.ones(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.long, torch.float64])
def test_mha_names_both_dtypes_when_the_input_does_not_match_its_weights(dtype):
    mha = MultiHeadAttention(16, 4)
    x = torch.ones(2, 5, 16).to(dtype)
    with pytest.raises(TypeError, match=rf"x has dtype {dtype} but the module's weights are torch.float32"):
        mha(x)
    with pytest.raises(TypeError, match=rf"context has dtype {dtype} but the module's weights are torch.float32"):
        mha(torch.randn(2, 5, 16), context=x)
    assert mha.double()(x.double()).dtype == torch.float64   # converting either side is the fix the message names


def test_mha_sizes_are_checked_before_anything_is_built():
    with pytest.raises(ValueError, match="n_heads must be a positive int, got 0"):   # was a ZeroDivisionError
        MultiHeadAttention(16, 0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0.0, 1.0\), got 1.0"):
        MultiHeadAttention(16, 2, dropout=1.0)
    with pytest.raises(ValueError, match=r"past_kv must be the \(k, v\) an earlier call returned"):
        MultiHeadAttention(16, 4)(torch.randn(2, 3, 16), past_kv=(torch.randn(2, 4, 1, 5), torch.randn(2, 4, 1, 5)))
