"""vitlib.scaling: the power-law fit recovers a known law, N counts what Kaplan et al. count, and bad input is named."""

import numpy as np
import pytest

from vitlib.scaling import fit_power_law, non_embedding_parameters, power_law
from vitlib.transformer import GPT, GPTConfig


@pytest.mark.parametrize("E, A, alpha", [(0.8, 12.0, 0.35), (0.0, 3.0, 0.1), (1.5, 200.0, 0.7)])
def test_the_fit_recovers_a_known_law(E, A, alpha):
    x = np.geomspace(1e3, 1e6, 7)
    fit = fit_power_law(x, power_law(x, E, A, alpha))
    assert abs(fit["E"] - E) < 2e-3 and abs(fit["alpha"] - alpha) / alpha < 0.02 and fit["rmse"] < 1e-3


def test_the_fit_beats_a_law_without_an_irreducible_term_on_noisy_data():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e6, 8)
    loss = power_law(x, 1.0, 20.0, 0.4) * (1 + 0.002 * rng.standard_normal(len(x)))
    fit = fit_power_law(x, loss)
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)           # a pure power law, E = 0
    pure = np.sqrt(np.mean((np.exp(intercept) * x ** slope - loss) ** 2))
    assert fit["rmse"] < pure and 0.9 < fit["E"] < 1.1


def test_non_embedding_parameters_leave_out_the_tables():
    model = GPT(GPTConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_len=20))
    total = sum(p.numel() for p in model.parameters())
    assert non_embedding_parameters(model) == total - 50 * 32 - 20 * 32   # the head is tied to the token table


@pytest.mark.parametrize("x, loss, match", [
    ([1, 2], [3.0, 2.0], "length >= 3"),
    ([[1, 2, 3]], [[3.0, 2.0, 1.0]], "1-D"),
    ([1, 2, 3], [3.0, 2.0], "same length"),
    ([1, 0, 3], [3.0, 2.0, 1.0], "distinct positive"),
    ([1, 1, 2], [3.0, 2.0, 1.0], "distinct positive"),
    ([1, 2, 3], [3.0, float("nan"), 1.0], "finite"),
])
def test_bad_input_is_named(x, loss, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, loss)


def test_non_embedding_parameters_needs_a_module():
    with pytest.raises(TypeError, match="expected an nn.Module, got str"):
        non_embedding_parameters("gpt")
