"""vitlib.diffusion against diffusers' DDPMScheduler and DDIMScheduler (chapter 08): the same schedules, the same
forward process, the same reverse steps with the same random draws, so whole sampling loops give the same images.

diffusers clips x0_hat to [-1, 1] by default and vitlib does not: every comparison states clip_sample on both sides.
"""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: E402
from diffusers.utils.torch_utils import randn_tensor  # noqa: E402

from vitlib.diffusion import NoiseSchedule, sample  # noqa: E402

SCHEDULE_KWARGS = [dict(beta_schedule="linear"),
                   dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
                   dict(beta_schedule="squaredcos_cap_v2"), dict(num_train_timesteps=50, beta_start=1e-3, beta_end=0.2)]
PREDICTIONS = ["epsilon", "sample", "v_prediction"]
EXACT = dict(atol=1e-7, rtol=0)


def toy_model(prediction_type="epsilon"):
    """Trivial and deterministic: the best prediction if the data were N(0, I) (so samples stay O(1)), plus terms in
    x and t that tell a wrong coefficient or a wrong draw."""
    alpha_bar = NoiseSchedule().alphas_cumprod

    def model(x, t):
        t = torch.as_tensor(t).long().reshape(-1, *([1] * (x.dim() - 1)))     # (B or 1, 1, 1, 1)
        a = alpha_bar[t]
        best = {"epsilon": (1 - a).sqrt() * x, "sample": a.sqrt() * x, "v_prediction": 0 * x}[prediction_type]
        return best + 0.05 * torch.tanh(x) + 0.01 * torch.cos(t / 100.0)
    return model


def random_inputs(seed=0, shape=(3, 2, 5, 5)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("kwargs", SCHEDULE_KWARGS)
def test_schedules_equal_diffusers(kwargs):
    ours, theirs = NoiseSchedule(**kwargs), DDPMScheduler(**kwargs)
    for name in ("betas", "alphas", "alphas_cumprod"):
        assert getattr(ours, name).dtype == torch.float32
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), **EXACT)


@pytest.mark.parametrize("kwargs", SCHEDULE_KWARGS[:3])
def test_q_sample_and_velocity_equal_add_noise_and_get_velocity(kwargs):
    ours, theirs = NoiseSchedule(**kwargs), DDPMScheduler(**kwargs)
    x0, noise = random_inputs(1, (6, 3, 8, 8))
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    torch.testing.assert_close(ours.q_sample(x0, t, noise), theirs.add_noise(x0, noise, t), **EXACT)
    torch.testing.assert_close(ours.q_sample(x0, 321, noise), theirs.add_noise(x0, noise, torch.tensor([321])), **EXACT)
    torch.testing.assert_close(ours.velocity(x0, t, noise), theirs.get_velocity(x0, noise, t), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("clip_sample", [False, True])
def test_ddpm_step_equals_diffusers(variance_type, prediction_type, clip_sample):
    kwargs = dict(variance_type=variance_type, prediction_type=prediction_type, clip_sample=clip_sample)
    ours, theirs = NoiseSchedule(), DDPMScheduler(**kwargs)
    for t in (999, 500, 37, 1, 0):
        out, x_t = random_inputs(t)
        g1, g2 = torch.Generator().manual_seed(t), torch.Generator().manual_seed(t)
        expected = theirs.step(out, t, x_t, generator=g2).prev_sample
        torch.testing.assert_close(ours.ddpm_step(out, t, x_t, generator=g1, **kwargs), expected, **EXACT)
        assert torch.equal(g1.get_state(), g2.get_state()), "a different number of random draws"


def diffusers_loop(model, scheduler, steps, shape, seed, **step_kwargs):
    """What DDPMPipeline / DDIMPipeline do, with the toy model."""
    g = torch.Generator().manual_seed(seed)
    x = randn_tensor(shape, generator=g, device=torch.device("cpu"), dtype=torch.float32)
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x, generator=g, **step_kwargs).prev_sample
    return x


@pytest.mark.parametrize("variance_type,prediction_type,clip_sample,steps", [
    ("fixed_small", "epsilon", False, 1000), ("fixed_large", "v_prediction", False, 1000),
    ("fixed_small", "sample", True, 1000), ("fixed_small", "epsilon", True, 50)])
def test_ddpm_sampling_loop_equals_diffusers(variance_type, prediction_type, clip_sample, steps):
    kwargs = dict(variance_type=variance_type, prediction_type=prediction_type, clip_sample=clip_sample)
    shape = (2, 1, 6, 6)
    model = toy_model(prediction_type)
    expected = diffusers_loop(model, DDPMScheduler(**kwargs), steps, shape, seed=3)
    ours = sample(model, NoiseSchedule(), shape, steps=steps, method="ddpm",
                  generator=torch.Generator().manual_seed(3), **kwargs)
    assert ours.abs().max() < 10, "the toy model's samples should stay O(1)"
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("clip_sample", [False, True])
def test_ddim_step_equals_diffusers(eta, prediction_type, clip_sample):
    ours = NoiseSchedule(beta_schedule="squaredcos_cap_v2")
    theirs = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type, clip_sample=clip_sample)
    theirs.set_timesteps(20)                         # "leading": t = 950, 900, ..., 0 and prev_t = t - 50
    for t in (950, 500, 50, 0):
        out, x_t = random_inputs(t + 1)
        g1, g2 = torch.Generator().manual_seed(t), torch.Generator().manual_seed(t)
        expected = theirs.step(out, t, x_t, eta=eta, generator=g2).prev_sample
        got = ours.ddim_step(out, t, t - 50, x_t, eta=eta, generator=g1, prediction_type=prediction_type,
                             clip_sample=clip_sample)
        torch.testing.assert_close(got, expected, **EXACT)
        assert torch.equal(g1.get_state(), g2.get_state()), "a different number of random draws"


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("steps", [1000, 50, 7])
def test_ddim_sampling_loop_equals_diffusers(eta, steps):
    shape = (2, 3, 4, 4)
    expected = diffusers_loop(toy_model(), DDIMScheduler(clip_sample=False), steps, shape, seed=5, eta=eta)
    ours = sample(toy_model(), NoiseSchedule(), shape, steps=steps, method="ddim", eta=eta,
                  generator=torch.Generator().manual_seed(5))
    assert ours.abs().max() < 10, "the toy model's samples should stay O(1)"
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def tiny_unet():
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4).eval()


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_a_diffusers_unet_runs_in_the_vitlib_sampler_as_in_its_pipeline(method):
    """The loop is model-agnostic: a UNet2DModel (output .sample) in vitlib's sampler gives its pipeline's images."""
    unet, steps = tiny_unet(), 4
    if method == "ddpm":
        pipe = DDPMPipeline(unet, DDPMScheduler(clip_sample=True))
        theirs = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=steps,
                      output_type="np").images
    else:
        pipe = DDIMPipeline(unet, DDIMScheduler(clip_sample=True))
        theirs = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, eta=0.5,
                      output_type="np").images
    pipe.set_progress_bar_config(disable=True)
    ours = sample(unet, NoiseSchedule(), (2, 1, 8, 8), steps=steps, method=method, eta=0.5, clip_sample=True,
                  generator=torch.Generator().manual_seed(0))
    ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)                  # (B, H, W, C) as the pipeline gives
    torch.testing.assert_close(ours, torch.from_numpy(theirs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("strength", [0.3, 0.6, 1.0])
@pytest.mark.parametrize("steps", [20, 7])
def test_sdedit_equals_the_image_to_image_pipelines_loop(strength, steps):
    """diffusers' img2img: keep the last int(steps * strength) timesteps, noise the image to the first of them with
    the generator's first draw (add_noise), then step as usual."""
    shape, g = (2, 3, 4, 4), torch.Generator().manual_seed(3)
    init = torch.rand(shape, generator=g) * 2 - 1
    scheduler = DDIMScheduler(clip_sample=False)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[steps - min(int(steps * strength), steps):]
    g = torch.Generator().manual_seed(8)
    x = scheduler.add_noise(init, randn_tensor(shape, generator=g), timesteps[:1])
    model = toy_model()
    for t in timesteps:
        x = scheduler.step(model(x, t), t, x, eta=0.0, generator=g).prev_sample
    ours = sample(model, NoiseSchedule(), shape, steps=steps, method="ddim", generator=torch.Generator().manual_seed(8),
                  init=init, strength=strength)
    torch.testing.assert_close(ours, x, atol=1e-5, rtol=0)
