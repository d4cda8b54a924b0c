"""vitlib.diffusion on its own (chapter 08): the posterior against its textbook formula, the prediction types,
DDIM at eta = 1 as DDPM, classifier-free guidance, the sampler's contract, and a table of bad inputs.

The comparisons with diffusers' schedulers are in test_diffusion_vs_diffusers.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vitlib.diffusion import NoiseSchedule, sample


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_schedule_is_a_small_dataclass_config():
    s = NoiseSchedule(beta_schedule="squaredcos_cap_v2")
    assert dataclasses.asdict(s) == dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=1e-4,
                                         beta_end=0.02)
    assert s == NoiseSchedule(**dataclasses.asdict(s))
    assert s.betas.shape == s.alphas.shape == s.alphas_cumprod.shape == (1000,)
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all() and 0 < s.alphas_cumprod[-1] < 1e-3


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_posterior_matches_its_textbook_formula(beta_schedule):
    """mu~ = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t, in fp64."""
    s = NoiseSchedule(beta_schedule=beta_schedule)
    beta, alpha, abar = s.betas.double(), s.alphas.double(), s.alphas_cumprod.double()
    x0, x_t = randn(2, 3, 4, 4, seed=1), randn(2, 3, 4, 4, seed=2)
    for t in (1, 10, 500, 999):
        mean = (abar[t - 1].sqrt() * beta[t] / (1 - abar[t]) * x0.double()
                + alpha[t].sqrt() * (1 - abar[t - 1]) / (1 - abar[t]) * x_t.double())
        variance = (1 - abar[t - 1]) / (1 - abar[t]) * beta[t]
        # beta_ts = 1 - abar_t / abar_{t-1} in fp32 (diffusers' form, which also serves strided steps) loses about
        # four digits to cancellation at small t, where beta_t ~ 1e-4: hence the 1e-4 here.
        torch.testing.assert_close(s.posterior_mean(x0, x_t, t).double(), mean, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(s.posterior_variance(t).double(), variance, atol=1e-7, rtol=1e-3)
    assert s.posterior_variance(0) == 0                           # x_0 is known exactly at the last step
    torch.testing.assert_close(s.posterior_mean(x0, x_t, 0), x0)  # ... and the mean is x0_hat itself


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_each_prediction_type_recovers_x0_and_eps(prediction_type):
    s = NoiseSchedule()
    x0, eps = randn(4, 1, 6, 6, seed=3), randn(4, 1, 6, 6, seed=4)
    for t in (0, 100, 900):
        x_t = s.q_sample(x0, t, eps)
        target = {"epsilon": eps, "sample": x0, "v_prediction": s.velocity(x0, t, eps)}[prediction_type]
        x0_hat, eps_hat = s.predict_x0_eps(target, t, x_t, prediction_type)
        torch.testing.assert_close(x0_hat, x0, atol=2e-3 if prediction_type == "epsilon" else 1e-5, rtol=0)
        if t > 0:   # at t = 0, x_t holds almost no noise to recover eps from
            torch.testing.assert_close(eps_hat, eps, atol=1e-3, rtol=0)


def test_ddim_at_eta_one_is_the_ddpm_step():
    """sigma = sqrt(beta~) turns DDIM's update into DDPM's ancestral step (Song et al. 2021): same mean, same draw."""
    s = NoiseSchedule()
    out, x_t = randn(2, 3, 5, 5, seed=5), randn(2, 3, 5, 5, seed=6)
    for t in (999, 400, 50):   # near t = 1, 1 - abar_{t-1} - sigma^2 cancels in fp32 and they part by ~1e-4
        ddpm = s.ddpm_step(out, t, x_t, generator=torch.Generator().manual_seed(t))
        ddim = s.ddim_step(out, t, t - 1, x_t, eta=1.0, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(ddim, ddpm, atol=1e-5, rtol=1e-5)


def test_ddim_at_eta_zero_is_deterministic_and_draws_nothing():
    s, g = NoiseSchedule(), torch.Generator().manual_seed(0)
    state = g.get_state()
    a = s.ddim_step(randn(1, 1, 3, 3, seed=7), 500, 480, randn(1, 1, 3, 3, seed=8), generator=g)
    assert torch.equal(g.get_state(), state)
    torch.testing.assert_close(a, s.ddim_step(randn(1, 1, 3, 3, seed=7), 500, 480, randn(1, 1, 3, 3, seed=8)))


def cond_model(x, t, c):
    """Output depends on the condition c (B, 2) and on x; records its batch sizes."""
    cond_model.calls.append(x.shape[0])
    return 0.1 * x + c[:, :1, None, None] - 0.5 * c[:, 1:, None, None]


@pytest.mark.parametrize("scale", [0.0, 3.0])
@pytest.mark.parametrize("give_uncond", [False, True])
def test_classifier_free_guidance_combines_the_two_predictions(scale, give_uncond):
    c, u = randn(2, 2, seed=9), randn(1, 2, seed=10)
    uncond = u if give_uncond else torch.zeros(1, 2)

    def guided_by_hand(x, t):
        out_u, out_c = cond_model(x, t, uncond.expand(2, 2)), cond_model(x, t, c)
        return out_u + scale * (out_c - out_u)

    cond_model.calls = []
    kwargs = dict(steps=5, method="ddim", eta=0.5)
    ours = sample(cond_model, NoiseSchedule(), (2, 1, 4, 4), cond=c, guidance_scale=scale,
                  uncond=u if give_uncond else None, generator=torch.Generator().manual_seed(0), **kwargs)
    assert cond_model.calls == [4] * 5, "one call on the doubled batch per step"
    expected = sample(guided_by_hand, NoiseSchedule(), (2, 1, 4, 4), generator=torch.Generator().manual_seed(0),
                      **kwargs)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_guidance_scale_one_calls_the_conditional_model_once():
    cond_model.calls = []
    sample(cond_model, NoiseSchedule(), (3, 1, 2, 2), steps=4, cond=randn(3, 2))
    assert cond_model.calls == [3] * 4


class Output:
    def __init__(self, sample):
        self.sample = sample


class TinyDenoiser(torch.nn.Module):
    """A module with parameters (the sampler takes its device and dtype) returning an object with .sample."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5, dtype=dtype))

    def forward(self, x, t):
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        return Output(self.scale * x)


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_sampler_takes_outputs_with_sample_and_the_models_dtype(method):
    x = sample(TinyDenoiser(torch.float64), NoiseSchedule(), (2, 1, 4, 4), steps=10, method=method,
               generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64 and x.shape == (2, 1, 4, 4) and torch.isfinite(x).all()
    again = sample(TinyDenoiser(torch.float64), NoiseSchedule(), (2, 1, 4, 4), steps=10, method=method,
                   generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again), "the same seed gives the same images"


# --------------------------------------------------------------------------- bad inputs: a table

S = NoiseSchedule()
X = randn(2, 1, 4, 4)
NAN = X.clone()
NAN[0, 0, 0, 0] = float("nan")
G = torch.Generator().manual_seed(0)
zero_model = lambda x, t, *c: torch.zeros_like(x)   # noqa: E731


def wrong_shape_model(x, t):
    return x[:, :, :2]


BAD = [
    # (what, call, exception, words the message must contain)
    ("unknown schedule", lambda: NoiseSchedule(beta_schedule="cosine"), ValueError,
     ["'cosine'", "linear, scaled_linear, squaredcos_cap_v2"]),
    ("zero timesteps", lambda: NoiseSchedule(num_train_timesteps=0), ValueError, ["positive int", "0"]),
    ("negative timesteps", lambda: NoiseSchedule(num_train_timesteps=-3), ValueError, ["positive int", "-3"]),
    ("float timesteps", lambda: NoiseSchedule(num_train_timesteps=10.0), ValueError, ["positive int", "10.0"]),
    ("beta_start 0", lambda: NoiseSchedule(beta_start=0.0), ValueError, ["beta_start", "(0.0, 1.0)", "0.0"]),
    ("beta_end 1.5", lambda: NoiseSchedule(beta_end=1.5), ValueError, ["beta_end", "(0.0, 1.0)", "1.5"]),
    ("beta_start > beta_end", lambda: NoiseSchedule(beta_start=0.03), ValueError, ["beta_start must be <= beta_end"]),
    ("NaN beta", lambda: NoiseSchedule(beta_end=float("nan")), ValueError, ["beta_end", "nan"]),
    ("string beta", lambda: NoiseSchedule(beta_start="1e-4"), TypeError, ["beta_start", "real number", "str"]),
    ("integer x0", lambda: S.q_sample(X.long(), 3, X), TypeError, ["x0", "floating-point", "torch.int64"]),
    ("noise shape", lambda: S.q_sample(X, 3, X[:1]), ValueError, ["noise", "(2, 1, 4, 4)", "(1, 1, 4, 4)"]),
    ("noise dtype", lambda: S.q_sample(X, 3, X.double()), TypeError, ["noise", "torch.float32", "torch.float64"]),
    ("t = T", lambda: S.q_sample(X, 1000, X), ValueError, ["[0, 1000)", "1000"]),
    ("t < 0", lambda: S.q_sample(X, -1, X), ValueError, ["[0, 1000)", "-1"]),
    ("float t", lambda: S.q_sample(X, 2.5, X), TypeError, ["int timestep", "float"]),
    ("float t tensor", lambda: S.q_sample(X, torch.tensor([1.0, 2.0]), X), TypeError, ["integer tensor", "float32"]),
    ("t tensor length", lambda: S.q_sample(X, torch.tensor([1, 2, 3]), X), ValueError, ["(2,)", "(3,)"]),
    ("t tensor range", lambda: S.q_sample(X, torch.tensor([1, 1000]), X), ValueError, ["[0, 1000)", "1000"]),
    ("NaN x0", lambda: S.q_sample(NAN, 3, X), ValueError, ["x0", "NaN"]),
    ("empty batch", lambda: S.q_sample(X[:0], 3, X[:0]), ValueError, ["batch >= 1", "(0, 1, 4, 4)"]),
    ("unknown variance", lambda: S.ddpm_step(X, 5, X, variance_type="learned"), ValueError,
     ["'learned'", "fixed_small, fixed_large"]),
    ("unknown prediction", lambda: S.ddpm_step(X, 5, X, prediction_type="eps"), ValueError,
     ["'eps'", "epsilon, sample, v_prediction"]),
    ("output shape", lambda: S.ddpm_step(X[:1], 5, X), ValueError, ["model_output", "(2, 1, 4, 4)", "(1, 1, 4, 4)"]),
    ("output dtype", lambda: S.ddpm_step(X.double(), 5, X), TypeError, ["torch.float32", "torch.float64"]),
    ("ddpm t = T", lambda: S.ddpm_step(X, 1000, X, generator=G), ValueError, ["[0, 1000)", "1000"]),
    ("NaN output", lambda: S.ddpm_step(NAN, 5, X, generator=G), ValueError, ["model_output", "NaN"]),
    ("generator kind", lambda: S.ddpm_step(X, 5, X, generator=0), TypeError, ["torch.Generator", "int"]),
    ("empty sample", lambda: S.ddpm_step(X[:0], 5, X[:0]), ValueError, ["batch >= 1"]),
    ("ddim prev_t >= t", lambda: S.ddim_step(X, 5, 5, X, generator=G), ValueError, ["prev_t", "[-1000, 5)", "5"]),
    ("ddim eta", lambda: S.ddim_step(X, 5, 4, X, eta=1.5, generator=G), ValueError, ["eta", "[0.0, 1.0]", "1.5"]),
    ("ddim prediction", lambda: S.ddim_step(X, 5, 4, X, prediction_type="x0"), ValueError,
     ["'x0'", "epsilon, sample, v_prediction"]),
    ("unknown method", lambda: sample(zero_model, S, (2, 1, 4, 4), method="euler", generator=G), ValueError,
     ["'euler'", "ddpm, ddim"]),
    ("sampler variance", lambda: sample(zero_model, S, (2, 1, 4, 4), variance_type="large", generator=G),
     ValueError, ["'large'", "fixed_small, fixed_large"]),
    ("sampler prediction", lambda: sample(zero_model, S, (2, 1, 4, 4), prediction_type="v", generator=G),
     ValueError, ["'v'", "epsilon, sample, v_prediction"]),
    ("steps 0", lambda: sample(zero_model, S, (2, 1, 4, 4), steps=0, generator=G), ValueError, ["steps", "0"]),
    ("steps > T", lambda: sample(zero_model, S, (2, 1, 4, 4), steps=1001, generator=G), ValueError,
     ["steps", "1000", "1001"]),
    ("empty shape batch", lambda: sample(zero_model, S, (0, 1, 4, 4), generator=G), ValueError,
     ["batch >= 1", "(0, 1, 4, 4)"]),
    ("guidance without cond", lambda: sample(zero_model, S, (2, 1, 4, 4), guidance_scale=3.0, generator=G),
     ValueError, ["guidance_scale=3.0", "cond=None"]),
    ("negative guidance", lambda: sample(zero_model, S, (2, 1, 4, 4), cond=X, guidance_scale=-1.0), ValueError,
     ["guidance_scale", ">= 0.0"]),
    ("cond batch", lambda: sample(zero_model, S, (2, 1, 4, 4), cond=X[:1], guidance_scale=2.0), ValueError,
     ["cond", "batch 2", "(1, 1, 4, 4)"]),
    ("uncond shape", lambda: sample(zero_model, S, (2, 1, 4, 4), cond=X, uncond=X[:, :, :2], guidance_scale=2.0),
     ValueError, ["uncond", "(2, 1, 4, 4)", "(2, 1, 2, 4)"]),
    ("strength 0", lambda: sample(zero_model, S, (2, 1, 4, 4), init=X, strength=0.0), ValueError,
     ["strength", "(0.0, 1.0]", "0.0"]),
    ("strength > 1", lambda: sample(zero_model, S, (2, 1, 4, 4), init=X, strength=1.5), ValueError,
     ["strength", "1.5"]),
    ("init shape", lambda: sample(zero_model, S, (2, 1, 4, 4), init=X[:1], strength=0.5), ValueError,
     ["init", "(2, 1, 4, 4)", "(1, 1, 4, 4)"]),
    ("init int", lambda: sample(zero_model, S, (2, 1, 4, 4), init=X.long(), strength=0.5), ValueError,
     ["init", "float", "int64"]),
    ("model not callable", lambda: sample("unet", S, (2, 1, 4, 4)), TypeError, ["callable", "str"]),
    ("schedule kind", lambda: sample(zero_model, {"betas": None}, (2, 1, 4, 4)), TypeError, ["NoiseSchedule", "dict"]),
    ("model output shape", lambda: sample(wrong_shape_model, S, (2, 1, 4, 4), steps=2, generator=G), ValueError,
     ["(2, 1, 4, 4)", "(2, 1, 2, 4)"]),
]


@pytest.mark.parametrize("what,call,exception,words", BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_refused_with_expected_and_got(what, call, exception, words):
    state = G.get_state()
    with pytest.raises(exception) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{what}: {word!r} not in {str(info.value)!r}"
    if what != "model output shape":   # that one is only known once the model has run
        assert torch.equal(G.get_state(), state), f"{what}: noise was drawn before the error"
