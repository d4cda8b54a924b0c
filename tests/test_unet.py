"""Tests of vitlib.unet: the denoiser of chapters 08-09 (shapes, time embedding, attention, gradients, zoo, diffusers)."""

import math

import pytest
import torch

from vitlib import zoo
from vitlib.positional import sinusoidal_encoding
from vitlib.unet import UNet, UNetConfig, UNetOutput, parameter_count_by_part, timestep_embedding
from vitlib.utils import count_parameters

TINY = dict(channels=(8, 16), norm_groups=4, n_heads=2, time_dim=16, sample_size=8)


def tiny(seed=0, **changes) -> UNet:
    torch.manual_seed(seed)
    return UNet(UNetConfig(**{**TINY, **changes}))


@pytest.mark.parametrize("changes, shape", [
    ({}, (2, 1, 8, 8)),
    (dict(in_channels=3, out_channels=3, sample_size=32, channels=(8, 16, 16), attention_levels=(2,)), (3, 3, 32, 32)),
    (dict(in_channels=3, out_channels=6, layers_per_level=2, attention_levels=(0, 1)), (1, 3, 16, 8)),
    (dict(channels=(8,), attention_levels=(0,)), (2, 1, 5, 7)),   # one level: no resampling, any size
    (dict(channels=(8, 16, 16, 24), attention_levels=(), sample_size=16), (2, 1, 16, 16)),
    (dict(cond_dim=12, attention_levels=(0, 1)), (2, 1, 8, 8)),
])
def test_output_has_the_input_shape(changes, shape):
    model = tiny(**changes)
    x = torch.randn(*shape)
    cond = torch.randn(shape[0], 5, 12) if model.config.cond_dim else None
    y = model(x, torch.arange(shape[0]) * 7, cond)
    assert y.shape == (shape[0], model.config.out_channels, *shape[2:]) and torch.isfinite(y).all()


def test_time_embedding_is_the_sinusoid_formula():
    t, d = torch.tensor([0, 1, 17, 999]), 16
    direct = torch.tensor([[math.sin(s / 10000 ** (2 * (j // 2) / d)) if j % 2 == 0 else
                            math.cos(s / 10000 ** (2 * (j // 2) / d)) for j in range(d)] for s in t.tolist()])
    torch.testing.assert_close(timestep_embedding(t, d), direct, atol=1e-6, rtol=0)
    torch.testing.assert_close(timestep_embedding(t, d), sinusoidal_encoding(1000, d)[t], atol=0, rtol=0)


def test_time_embedding_matches_diffusers_up_to_feature_order():
    from diffusers.models.embeddings import get_timestep_embedding
    t, d = torch.tensor([0, 5, 500, 999]), 16
    theirs = get_timestep_embedding(t, d, flip_sin_to_cos=False, downscale_freq_shift=0)   # (B, d): sins | coses
    ours = timestep_embedding(t, d)                                                         # (B, d): sin, cos, ...
    torch.testing.assert_close(ours[:, 0::2], theirs[:, :d // 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[:, 1::2], theirs[:, d // 2:], atol=1e-5, rtol=0)


def test_scalar_and_batched_t_agree_and_t_matters():
    model, x = tiny(), torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        same = model(x, torch.full((3,), 5))
        torch.testing.assert_close(model(x, 5), same, atol=0, rtol=0)
        torch.testing.assert_close(model(x, torch.tensor(5)), same, atol=0, rtol=0)
        assert not torch.allclose(model(x, 6), same)


def test_attention_and_skips_change_the_output():
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    with_attn, without = tiny(attention_levels=(1,)), tiny(attention_levels=())
    missing, unexpected = without.load_state_dict(with_attn.state_dict(), strict=False)   # same convolutions
    assert not missing and unexpected and all(".attn." in k for k in unexpected)          # only attention differs
    with torch.no_grad():
        y = with_attn(x, t)
        assert not torch.allclose(y, without(x, t), atol=1e-4)
        # the up path's full-resolution level reads (B, 16 + 8, H, W): the level below, then the skip from level 0
        seen = []
        hook = with_attn.up[-1].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
        with_attn(x, t)
        hook.remove()
        assert seen == [(2, 16 + 8, 8, 8)]

        def drop_skip(m, args):
            h = args[0].clone()
            h[:, 16:] = 0                                                 # zero the skip's 8 channels
            return (h, *args[1:])
        hook = with_attn.up[-1].register_forward_pre_hook(drop_skip)
        assert not torch.allclose(with_attn(x, t), y, atol=1e-4)
        hook.remove()


def test_cross_attention_reads_the_context_and_its_mask():
    model, x, t = tiny(cond_dim=12, attention_levels=(0, 1)), torch.randn(2, 1, 8, 8), torch.tensor([3, 4])
    cond, mask = torch.randn(2, 5, 12), torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        y = model(x, t, cond, mask)
        assert not torch.allclose(model(x, t, cond + 1.0, mask), y)        # the context matters
        mask[:, 3:] = False                                                 # tokens 3, 4 are padding ...
        y = model(x, t, cond, mask)
        cond2 = cond.clone()
        cond2[:, 3:] = 99.0
        torch.testing.assert_close(model(x, t, cond2, mask), y, atol=1e-5, rtol=0)   # ... and are ignored
        dead = torch.zeros(2, 5, dtype=torch.bool)                          # no real token: cross-attention adds 0
        torch.testing.assert_close(model(x, t, cond, dead), model(x, t), atol=1e-6, rtol=0)


@pytest.mark.parametrize("changes", [dict(attention_levels=(0, 1)), dict(cond_dim=12, attention_levels=(1,))])
def test_gradients_reach_every_parameter(changes):
    model = tiny(**changes)
    cond = torch.randn(2, 5, 12) if model.config.cond_dim else None
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 900]), cond).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reached {missing}"


def test_same_seed_same_model_and_output():
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(tiny(seed=3)(x, 7), tiny(seed=3)(x, 7), atol=0, rtol=0)
        assert not torch.allclose(tiny(seed=3)(x, 7), tiny(seed=4)(x, 7))


def test_parameter_counts_by_part_sum_to_the_total():
    for model in (tiny(), tiny(cond_dim=12, attention_levels=(0, 1), layers_per_level=2)):
        parts = parameter_count_by_part(model)
        assert list(parts) == ["time embedding", "input", "down path", "middle", "up path", "output"]
        assert all(n > 0 for n in parts.values()) and sum(parts.values()) == count_parameters(model)
    assert parameter_count_by_part(tiny())["time embedding"] == 2 * (16 * 16 + 16)   # two Linear(16, 16)


def test_zoo_round_trip(tmp_path):
    model = tiny(cond_dim=12)
    zoo.save(model, "tiny-unet", model.config, {"note": 1.0}, directory=tmp_path)
    loaded = zoo.load(tmp_path / "tiny-unet")
    assert isinstance(loaded, UNet) and loaded.config == model.config and not loaded.training
    assert loaded.config.channels == (8, 16)   # tuples come back as tuples
    x, cond = torch.randn(2, 1, 8, 8), torch.randn(2, 3, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 4, cond), model.eval()(x, 4, cond), atol=0, rtol=0)


def test_runs_inside_diffusers_ddpm_pipeline():
    from diffusers import DDPMPipeline, DDPMScheduler
    model = tiny(in_channels=3, out_channels=3, sample_size=16)
    assert isinstance(model(torch.randn(1, 3, 16, 16), 0, return_dict=True), UNetOutput)
    model.return_dict = True   # DDPMPipeline calls unet(x, t).sample with a 0-dim int64 t
    pipe = DDPMPipeline(unet=model, scheduler=DDPMScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 16, 16, 3) and images.min() >= 0 and images.max() <= 1
    again = pipe(batch_size=2, num_inference_steps=3, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert (images == again).all()


X = torch.randn(2, 1, 8, 8)
BAD_INPUTS = [  # (x, t, cond, cond_mask, error, message)
    (X[0], 1, None, None, ValueError, r"shape \(B, 1, H, W\), got \(1, 8, 8\)"),
    (torch.randn(2, 3, 8, 8), 1, None, None, ValueError, r"shape \(B, 1, H, W\), got \(2, 3, 8, 8\)"),
    (torch.randn(2, 1, 7, 8), 1, None, None, ValueError, r"multiples of 2\^\(levels - 1\) = 2.*got 7x8"),
    (torch.randn(0, 1, 8, 8), 1, None, None, ValueError, r"empty batch.*got \(0, 1, 8, 8\)"),
    (X.double(), 1, None, None, TypeError, "x has dtype torch.float64 but the module's weights are torch.float32"),
    (X.long(), 1, None, None, TypeError, "x must be a floating-point tensor.*got torch.int64"),
    (X.numpy(), 1, None, None, TypeError, "x must be a floating-point tensor.*got ndarray"),
    (X.clone().fill_(float("nan")), 1, None, None, ValueError, "NaN or infinite"),
    (X, 1000, None, None, ValueError, r"t must lie in \[0, 1000\), got values in \[1000, 1000\]"),
    (X, torch.tensor([-1, 3]), None, None, ValueError, r"t must lie in \[0, 1000\), got values in \[-1, 3\]"),
    (X, 0.5, None, None, TypeError, "t must be integer timesteps.*got float"),
    (X, torch.tensor([1.0, 2.0]), None, None, TypeError, r"t must be integer timesteps.*got torch.float32 \(2,\)"),
    (X, True, None, None, TypeError, "t must be integer timesteps.*got bool"),
    (X, torch.tensor([1, 2, 3]), None, None, ValueError, r"t must have shape \(\) or \(2,\), got \(3,\)"),
    (X, 1, torch.randn(2, 5, 12), None, ValueError, "no cross-attention.*cond_dim is None"),
    (X, 1, None, torch.ones(2, 5, dtype=torch.bool), ValueError, "cond_mask was given without cond"),
]
COND_INPUTS = [
    (X, 1, torch.randn(2, 5, 7), None, ValueError, r"cond must have shape \(2, S >= 1, 12\), got \(2, 5, 7\)"),
    (X, 1, torch.randn(3, 5, 12), None, ValueError, r"cond must have shape \(2, S >= 1, 12\), got \(3, 5, 12\)"),
    (X, 1, torch.randn(2, 12), None, ValueError, r"cond must have shape \(2, S >= 1, 12\), got \(2, 12\)"),
    (X, 1, torch.randn(2, 0, 12), None, ValueError, r"S >= 1.*got \(2, 0, 12\)"),
    (X, 1, torch.randn(2, 5, 12), torch.ones(2, 4, dtype=torch.bool), ValueError,
     r"cond_mask must be a bool tensor of shape \(2, 5\).*got torch.bool \(2, 4\)"),
    (X, 1, torch.randn(2, 5, 12), torch.ones(2, 5), ValueError, r"cond_mask must be a bool.*got torch.float32"),
]


@pytest.mark.parametrize("x, t, cond, cond_mask, error, message", BAD_INPUTS)
def test_bad_input_is_refused_before_any_work(x, t, cond, cond_mask, error, message):
    _refused(tiny(), x, t, cond, cond_mask, error, message)


@pytest.mark.parametrize("x, t, cond, cond_mask, error, message", COND_INPUTS)
def test_bad_context_is_refused_before_any_work(x, t, cond, cond_mask, error, message):
    _refused(tiny(cond_dim=12), x, t, cond, cond_mask, error, message)


def _refused(model, x, t, cond, cond_mask, error, message):
    ran = []
    model.conv_in.register_forward_pre_hook(lambda *_: ran.append(True))   # the first layer never runs
    with pytest.raises(error, match=message):
        model(x, t, cond, cond_mask)
    assert not ran


@pytest.mark.parametrize("changes, message", [
    (dict(channels=(8, 12)), r"channels\[1\]=12 is not divisible by norm_groups=8"),
    (dict(channels=(), attention_levels=()), "at least one level"),
    (dict(attention_levels=(2,)), r"attention_levels must hold levels in \[0, 2\), got \(2,\)"),
    (dict(sample_size=9), r"sample_size=9 is not divisible by 2\^\(levels - 1\)=2"),
    (dict(time_dim=15), "time_dim must be even"),
    (dict(n_heads=3), "not divisible by n_heads=3"),
    (dict(cond_dim=0), "cond_dim must be a positive int, got 0"),
    (dict(num_timesteps=0), "num_timesteps must be a positive int"),
])
def test_config_checks_its_sizes(changes, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**{**dict(channels=(8, 16), norm_groups=8, n_heads=2, time_dim=16, sample_size=8), **changes})
    with pytest.raises(TypeError, match="UNet expects a UNetConfig"):
        UNet({"channels": (8, 16)})


def test_runs_inside_the_course_sampler():
    from vitlib.diffusion import NoiseSchedule, sample

    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, out_channels=1, sample_size=8, channels=(16, 32), n_heads=2)).eval()
    draw = lambda: sample(model, NoiseSchedule(), (2, 1, 8, 8), steps=5, method="ddim",  # noqa: E731
                          generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, again = draw(), draw()
    assert first.shape == (2, 1, 8, 8) and torch.isfinite(first).all()
    assert torch.equal(first, again)
