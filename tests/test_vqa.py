"""vitlib.vqa: every operator's model runs, ignores question padding and learns; the answer vocabulary covers every
answer the world gives; accuracy by type; the bad-input table."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.data import ShapesWorld
from vitlib.vqa import (OPERATORS, QUESTION_TYPES, VQAConfig, VQAModel, accuracy_by_type, answer_vocabulary,
                        qa_pairs)

ANSWERS = ("yes", "no", "red", "blue", "one", "two")


def _inputs(B=3, S=9, T=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 5:] = False   # a shorter question: padding after its <eos>
    return torch.randn(B, S, d, generator=g), torch.randn(B, T, d, generator=g) * mask[..., None], mask


def _model(operator, d=16):
    torch.manual_seed(0)
    return VQAModel(VQAConfig(operator=operator, d_image=d, d_text=d, d_model=d, n_heads=2, n_queries=3, hidden=8,
                              answers=ANSWERS)).eval()


@pytest.mark.parametrize("operator", OPERATORS)
def test_every_operator_answers_and_ignores_padding(operator):
    model = _model(operator)
    image, text, mask = _inputs()
    logits = model(image, text, mask)
    assert logits.shape == (3, len(ANSWERS)) and torch.isfinite(logits).all()
    junk = torch.randn(3, 4, 16)   # four more padding positions, holding junk instead of zeros
    longer, longer_mask = torch.cat([text, junk], dim=1), torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    longer[1, 5:7] = junk[1, :2]
    torch.testing.assert_close(model(image, longer, longer_mask), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("operator", OPERATORS)
def test_every_operator_fits_a_tiny_task(operator):
    """Answer with the colour of the patch the question's last token names: a few hundred steps must fit it."""
    torch.manual_seed(0)
    model = _model(operator).train()
    B, S, d = 64, 4, 16
    keys = torch.randn(S, d)
    values = torch.randn(2, d)

    def batch():
        which = torch.randint(S, (B,))
        colour = torch.randint(2, (B, S))
        image = keys[None] + values[colour]                                    # (B, S, d)
        text = torch.randn(B, 3, d) * 0.1
        text[:, -1] = keys[which]                                               # the question names a patch
        return image, text, torch.ones(B, 3, dtype=torch.bool), colour[torch.arange(B), which] + 2   # red / blue
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(300):
        image, text, mask, y = batch()
        loss = F.cross_entropy(model(image, text, mask), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    image, text, mask, y = batch()
    accuracy = (model(image, text, mask).argmax(-1) == y).float().mean().item()
    floor = 0.6 if operator == "concat" else 0.9   # a pooled image cannot say which patch is which colour
    assert accuracy >= floor, f"{operator}: {accuracy:.2f}"


def test_attention_maps():
    image, text, mask = _inputs()
    assert _model("cross_attention").attention(image, text, mask).shape == (3, 2, 7, 9)
    alpha = _model("attention").attention(image, text, mask)
    assert alpha.shape == (3, 1, 1, 9)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 1, 1))
    with pytest.raises(ValueError, match="attention maps exist for"):
        _model("projector").attention(image, text, mask)


def test_answer_vocabulary_covers_every_answer_and_type():
    w = ShapesWorld(image_size=24, max_objects=3, seed=0)
    vocab = answer_vocabulary(w)
    assert len(set(vocab)) == len(vocab)
    qa = qa_pairs(w, w.scenes(300, "train"), seed=0)
    assert {a for _, _, a, _ in qa} <= set(vocab)
    assert {t for _, _, _, t in qa} == set(QUESTION_TYPES)
    assert qa == qa_pairs(w, w.scenes(300, "train"), seed=0), "seeded: the same questions again"


def test_accuracy_by_type_counts_and_intervals():
    out = accuracy_by_type([True, False, True, True], ["color", "color", "count", "count"])
    assert out["color"]["accuracy"] == 0.5 and out["count"]["accuracy"] == 1.0 and out["all"]["n"] == 4
    lo, hi = out["count"]["interval"]
    assert 0.3 < lo < 0.5 and hi == 1.0   # Wilson: 2 of 2 is not a certainty


@pytest.mark.parametrize("make, error, message", [
    (lambda: VQAConfig(operator="film", answers=ANSWERS), ValueError, "operator"),
    (lambda: VQAConfig(answers=("yes",)), ValueError, "answers must be at least two"),
    (lambda: VQAConfig(answers=("yes", "yes")), ValueError, "distinct"),
    (lambda: VQAConfig(answers=ANSWERS, d_model=0), ValueError, "d_model"),
    (lambda: VQAModel({"operator": "concat"}), TypeError, "VQAConfig"),
    (lambda: _model("concat")(torch.randn(3, 9, 8), *_inputs()[1:]), ValueError, r"image must be patch tokens"),
    (lambda: _model("gated")(torch.randn(3, 0, 16), *_inputs()[1:]), ValueError, r"image must be patch tokens"),
    (lambda: _model("projector")(_inputs()[0], torch.randn(2, 7, 16), _inputs()[2]), ValueError, "text must"),
    (lambda: _model("resampler")(*_inputs()[:2], torch.ones(3, 7)), ValueError, "text_mask must be bool"),
    (lambda: _model("attention")(*_inputs()[:2], torch.zeros(3, 7, dtype=torch.bool)), ValueError, "text_mask"),
    (lambda: _model("cross_attention")(_inputs()[0].double(), *_inputs()[1:]), TypeError, "image"),
    (lambda: accuracy_by_type([True], ["color", "shape"]), ValueError, "same non-zero length"),
    (lambda: accuracy_by_type([], []), ValueError, "same non-zero length"),
])
def test_vqa_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
