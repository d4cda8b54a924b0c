"""Chapter 07's checkers accept a right answer and reject the usual wrong ones, naming the mistake; their expected
answers agree with vitlib.fusion. The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch

from vitlib.exercises import ch07
from vitlib.fusion import AttentionFusion, GatedCrossAttention, Projector
from vitlib.utils import count_parameters


def attention_fusion(V, v_t):
    alpha = torch.softmax(torch.einsum("bsd,bd->bs", V, v_t) / math.sqrt(V.shape[-1]), dim=-1)
    return torch.einsum("bs,bsd->bd", alpha, V)


def gated_residual(x, branch, alpha):
    return x + torch.tanh(alpha) * branch


def projector_parameters(d_image, d_model, kind):
    return d_image * d_model + d_model + (d_model * d_model + d_model if kind == "mlp" else 0)


def flatten_patches(V):
    return V.flatten(1)


SOLUTIONS = {ch07.check_attention_fusion: attention_fusion, ch07.check_gated_residual: gated_residual,
             ch07.check_projector_parameters: projector_parameters, ch07.check_flatten_patches: flatten_patches}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_the_right_answers_are_what_vitlib_computes():
    V, v_t = torch.randn(2, 9, 8), torch.randn(2, 8)
    torch.testing.assert_close(attention_fusion(V, v_t), AttentionFusion(8, 8, project=False)(V, v_t))
    for kind in ("linear", "mlp"):
        assert projector_parameters(12, 16, kind) == count_parameters(Projector(12, 16, kind))
    block = GatedCrossAttention(8, 2)
    x = torch.randn(1, 3, 8)
    assert torch.equal(block(x, torch.randn(1, 4, 8)), gated_residual(x, torch.randn(1, 3, 8), torch.tensor(0.0)))


@pytest.mark.parametrize("checker, wrong, mistake", [
    (ch07.check_attention_fusion, lambda V, v_t: torch.softmax(torch.einsum("bsd,bd->bs", V, v_t) / math.sqrt(
        V.shape[-1]), -1), "alpha returned"),
    (ch07.check_attention_fusion, lambda V, v_t: torch.einsum(
        "bs,bsd->bd", torch.softmax(torch.einsum("bsd,bd->bs", V, v_t), -1), V), "sqrt"),
    (ch07.check_attention_fusion, lambda V, v_t: V.mean(1), "ignores the text"),
    (ch07.check_gated_residual, lambda x, b, a: x + torch.sigmoid(a) * b, "sigmoid"),
    (ch07.check_gated_residual, lambda x, b, a: torch.tanh(a) * (x + b), "erases x"),
    (ch07.check_projector_parameters, lambda di, dm, k: di * dm + (dm * dm if k == "mlp" else 0), "biases"),
    (ch07.check_projector_parameters, lambda di, dm, k: 2 * (di * dm + dm) if k == "mlp" else di * dm + dm,
     "maps d_model to d_model"),
    (ch07.check_flatten_patches, lambda V: V.transpose(1, 2).flatten(1), "feature-major"),
])
def test_checkers_name_the_mistake(checker, wrong, mistake, capsys):
    assert not checker(wrong)
    assert mistake in capsys.readouterr().out
