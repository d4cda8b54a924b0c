"""Contrastive losses equal transformers' CLIPModel and SiglipModel losses; hinge and recall@k by hand."""

import math

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

from vitlib.contrastive import clip_loss, clip_loss_with_negatives, hinge_loss, siglip_loss, similarity

TINY_TEXT = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=16)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                   patch_size=8)


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (n, 8), generator=g)
    return ids, torch.rand(n, 3, 16, 16, generator=g)


def test_clip_loss_matches_transformers():
    torch.manual_seed(0)
    config = CLIPConfig(text_config={**TINY_TEXT, "eos_token_id": 3}, vision_config=TINY_VISION, projection_dim=24)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07) + 0.3)
        ids, pixels = _batch()
        out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
        ours = clip_loss(out.image_embeds * 3.0, out.text_embeds * 0.5, model.logit_scale)  # scale-free: normalised inside
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=0)


def test_siglip_loss_matches_transformers():
    torch.manual_seed(0)
    config = SiglipConfig(text_config=TINY_TEXT, vision_config=TINY_VISION)
    model = SiglipModel(config).eval()
    with torch.no_grad():  # transformers initialises both to 0; set them by hand so they matter
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-2.5)
        ids, pixels = _batch(seed=1)
        out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
        ours = siglip_loss(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias)
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=0)


def test_hinge_loss_by_hand():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = torch.tensor([[1.0, 0.1], [0.2, 1.0], [-1.0, 1.0]])
    s = similarity(v, t)
    m = 0.2
    expected = sum(max(0.0, m - s[i, i].item() + s[i, j].item()) + max(0.0, m - s[j, j].item() + s[i, j].item())
                   for i in range(3) for j in range(3) if i != j) / 3
    assert hinge_loss(v, t, margin=m).item() == pytest.approx(expected, abs=1e-6)
    perfect = torch.eye(3)
    assert hinge_loss(perfect, perfect, margin=0.5).item() == 0.0, "orthogonal matches beat every negative by 1 > m"


def test_losses_prefer_matched_pairs():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(8, 16, generator=g)
    shuffled = v[torch.randperm(8, generator=g)]
    scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-2.0)
    assert clip_loss(v, v, scale) < clip_loss(v, shuffled, scale)
    assert hinge_loss(v, v) < hinge_loss(v, shuffled)
    assert siglip_loss(v, v, scale, bias) < siglip_loss(v, shuffled, scale, bias)


def test_bad_input():
    with pytest.raises(ValueError, match=r"must pair up one to one: image \(4, 8\) vs text \(3, 8\)"):
        clip_loss(torch.randn(4, 8), torch.randn(3, 8), torch.tensor(1.0))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        hinge_loss(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match="2-D tensor"):
        siglip_loss(torch.randn(4), torch.randn(4), torch.tensor(1.0), torch.tensor(0.0))


def test_a_plain_number_is_taken_as_the_logit_scale():
    """clip_loss(v, t, 2.0) used to fail deep inside (a float has no .exp()); a number now means the same as a
    one-element tensor holding it, as the docstring says."""
    v, t = torch.randn(5, 8), torch.randn(5, 8)
    torch.testing.assert_close(clip_loss(v, t, 2.0), clip_loss(v, t, torch.tensor(2.0)), atol=0, rtol=0)
    torch.testing.assert_close(siglip_loss(v, t, 2.0, -1.0), siglip_loss(v, t, torch.tensor(2.0), torch.tensor(-1.0)),
                               atol=0, rtol=0)
    with pytest.raises(TypeError, match="logit_scale must be a real number, got str"):
        clip_loss(v, t, "2.0")


def test_clip_loss_with_negatives_is_the_equation_computed_directly():
    """L = 1/2 [CE([s, s(v, t~)] / tau) + CE([s^T, s(t, v~)] / tau)], term by term with plain loops."""
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    t_neg, v_neg = torch.randn(3, 8, generator=g), torch.randn(2, 8, generator=g)
    theta = 1.3
    cos = lambda a, b: (a @ b / (a.norm() * b.norm())).item()  # noqa: E731
    image_rows = text_rows = 0.0
    for i in range(4):
        own = math.exp(cos(v[i], t[i]) * math.exp(theta))
        texts = sum(math.exp(cos(v[i], x) * math.exp(theta)) for x in list(t) + list(t_neg))
        images = sum(math.exp(cos(x, t[i]) * math.exp(theta)) for x in list(v) + list(v_neg))
        image_rows -= math.log(own / texts) / 4
        text_rows -= math.log(own / images) / 4
    ours = clip_loss_with_negatives(v, t, theta, negative_texts=t_neg, negative_images=v_neg)
    assert ours.item() == pytest.approx((image_rows + text_rows) / 2, rel=1e-5)
    torch.testing.assert_close(clip_loss_with_negatives(v, t, theta), clip_loss(v, t, theta), atol=0, rtol=0)
    only_texts = clip_loss_with_negatives(v, t, theta, negative_texts=t_neg)
    assert clip_loss(v, t, theta) < only_texts < ours, "every negative adds to a denominator"


def test_clip_loss_with_negatives_gradient_reaches_the_negatives():
    v, t = torch.randn(3, 4), torch.randn(3, 4)
    t_neg = torch.randn(2, 4, requires_grad=True)
    clip_loss_with_negatives(v, t, 2.0, negative_texts=t_neg).backward()
    assert t_neg.grad is not None and t_neg.grad.abs().sum() > 0


@pytest.mark.parametrize("call, error, message", [
    (lambda: clip_loss_with_negatives(torch.randn(4, 8), torch.randn(4, 8), 2.0, negative_texts=torch.randn(3, 5)),
     ValueError, r"the batch's embeddings and negative_texts must share the feature size"),
    (lambda: clip_loss_with_negatives(torch.randn(4, 8), torch.randn(4, 8), 2.0, negative_images=torch.randn(8)),
     ValueError, r"negative_images must be a 2-D tensor \(batch, dim\), got \(8,\)"),
    (lambda: clip_loss_with_negatives(torch.randn(4, 8), torch.randn(4, 8), 2.0,
                                      negative_texts=torch.zeros(2, 8, dtype=torch.long)),
     TypeError, r"negative_texts must be floating-point embeddings, got torch\.int64 \(2, 8\)"),
    (lambda: clip_loss_with_negatives(torch.randn(4, 8), torch.randn(3, 8), 2.0), ValueError, r"must pair up one to one"),
])
def test_clip_loss_with_negatives_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
