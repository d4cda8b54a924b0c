"""vitlib.t2i and vitlib.diffusion_training (chapter 09): the loss against diffusers' forward process and velocity,
condition dropout, the EMA, text states, guided generation and CLIPScore; a bad-input table."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitlib import zoo
from vitlib.data import ShapesWorld
from vitlib.diffusion import NoiseSchedule
from vitlib.diffusion_training import EMA, denoising_loss, drop_condition
from vitlib.t2i import MAX_TOKENS, clip_score, edit, generate, text_states
from vitlib.unet import UNet, UNetConfig

S = NoiseSchedule(beta_schedule="squaredcos_cap_v2")
PROMPTS = ["a red circle.", "at the top left there is a small blue square."]


@pytest.fixture(scope="module")
def clip():
    return zoo.load("clip-shapes")


@pytest.fixture(scope="module")
def tokenizer():
    return ShapesWorld(image_size=24, seed=0).tokenizer


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet(UNetConfig(in_channels=3, out_channels=3, sample_size=8, channels=(8, 16), attention_levels=(1,),
                           cond_dim=64, n_heads=2, norm_groups=4, time_dim=16)).eval()


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_denoising_loss_uses_diffusers_forward_process_and_targets(prediction_type):
    from diffusers import DDPMScheduler
    ref = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    seen = {}

    def model(x_t, t_):
        seen["x_t"] = x_t
        return torch.zeros_like(x_t)

    loss = denoising_loss(model, S, x0, t, eps, prediction_type=prediction_type)
    torch.testing.assert_close(seen["x_t"], ref.add_noise(x0, eps, t), atol=1e-6, rtol=0)
    target = {"epsilon": eps, "sample": x0, "v_prediction": ref.get_velocity(x0, eps, t)}[prediction_type]
    torch.testing.assert_close(loss, target.pow(2).mean(), atol=1e-6, rtol=1e-6)


def test_denoising_loss_passes_cond_and_reads_sample_outputs():
    class Out:
        def __init__(self, sample):
            self.sample = sample

    x0 = torch.randn(2, 3, 8, 8)
    cond = torch.randn(2, 5, 64)
    loss = denoising_loss(lambda x, t, c: Out(x * 0 + c.mean()), S, x0, torch.tensor([1, 2]), x0, cond)
    assert torch.isfinite(loss) and loss.shape == ()


def test_drop_condition_zeroes_whole_rows_at_the_rate_asked():
    cond = torch.ones(4000, 3, 2)
    dropped = drop_condition(cond, 0.1, torch.Generator().manual_seed(0))
    rows = dropped.flatten(1)
    assert ((rows == 0).all(1) | (rows == 1).all(1)).all(), "a row is kept or zeroed whole"
    rate = (rows == 0).all(1).float().mean().item()
    assert abs(rate - 0.1) < 3 * math.sqrt(0.1 * 0.9 / 4000)
    again = drop_condition(cond, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again)
    assert torch.equal(drop_condition(cond, 0.0), cond) and (drop_condition(cond, 1.0) == 0).all()


def test_ema_follows_its_formula():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, 0.9 * before + 0.1 * model.weight)
    assert not ema.model.training and not ema.model.weight.requires_grad


def test_text_states_are_the_text_towers_states_zero_after_eos(clip, tokenizer):
    c = text_states(clip, tokenizer, PROMPTS)
    assert c.shape == (2, MAX_TOKENS, clip.config.text_width)
    for i, p in enumerate(PROMPTS):
        ids = tokenizer([p])["input_ids"]                                      # (1, T) unpadded
        torch.testing.assert_close(c[i, :ids.shape[1]], clip.text(ids)[0], atol=1e-5, rtol=1e-5)
        assert (c[i, ids.shape[1]:] == 0).all()
    torch.testing.assert_close(c[:1], text_states(clip, tokenizer, PROMPTS[:1]), atol=1e-5, rtol=1e-5)


def test_clip_score_is_w_times_clamped_cosine(clip, tokenizer):
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    ids = tokenizer(PROMPTS)
    logits = clip(images, ids["input_ids"], ids["attention_mask"])             # cos / tau
    cos = logits.diagonal() / clip.scale()
    torch.testing.assert_close(clip_score(clip, tokenizer, images, PROMPTS), 2.5 * cos.clamp(min=0))
    torch.testing.assert_close(clip_score(clip, tokenizer, images, PROMPTS, w=1.0),
                               F.relu(cos), atol=1e-6, rtol=1e-5)


def test_generate_is_seeded_in_range_and_decodes_latents(clip, tokenizer):
    c = text_states(clip, tokenizer, PROMPTS)[:, :, :]
    unet = tiny_unet()
    a = generate(unet, S, c, (3, 8, 8), 3.0, steps=3, generator=torch.Generator().manual_seed(1))
    b = generate(unet, S, c, (3, 8, 8), 3.0, steps=3, generator=torch.Generator().manual_seed(1), batch_size=1)
    assert a.shape == (2, 3, 8, 8) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)   # chunks draw the same noise in the same order
    decoded = generate(unet, S, c, (3, 8, 8), 1.0, steps=2, generator=torch.Generator().manual_seed(1),
                       decoder=lambda z: torch.sigmoid(F.interpolate(z, scale_factor=2)))
    assert decoded.shape == (2, 3, 16, 16) and unet.training is False


class Oracle(torch.nn.Module):
    """Knows x_0, so predicts eps exactly: eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""

    def __init__(self, x0):
        super().__init__()
        self.x0, self.w = x0, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, c):
        a = S.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * self.x0.repeat(len(x) // len(self.x0), 1, 1, 1)) / (1 - a).sqrt()


@pytest.mark.parametrize("strength", [0.2, 0.6, 1.0])
def test_edit_with_an_oracle_denoiser_gives_the_image_back(strength):
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = edit(Oracle(images * 2 - 1), S, images, torch.randn(2, 4, 64), strength, steps=10,
               generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


def test_edit_with_an_autoencoder_round_trips_through_the_latent():
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    encoder, decoder = (lambda x: x * 4 - 2), (lambda z: (z + 2) / 4)
    out = edit(Oracle(encoder(images)), S, images, torch.randn(2, 4, 64), 0.5, steps=10, encoder=encoder,
               decoder=decoder, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


C = torch.zeros(2, 4, 64)
BAD = [
    ("drop cond int", lambda: drop_condition(torch.zeros(2, 3, dtype=torch.long), 0.1), ValueError,
     ["cond", "floating-point", "int64"]),
    ("drop p > 1", lambda: drop_condition(C, 1.5), ValueError, ["p_uncond", "1.5"]),
    ("loss t shape", lambda: denoising_loss(lambda x, t: x, S, torch.zeros(2, 3, 4, 4), torch.tensor([1]),
                                            torch.zeros(2, 3, 4, 4)), ValueError, ["t", "(2,)", "(1,)"]),
    ("loss t range", lambda: denoising_loss(lambda x, t: x, S, torch.zeros(2, 3, 4, 4), torch.tensor([1, 1000]),
                                            torch.zeros(2, 3, 4, 4)), ValueError, ["[0, 1000)", "1000"]),
    ("loss noise shape", lambda: denoising_loss(lambda x, t: x, S, torch.zeros(2, 3, 4, 4), torch.tensor([1, 2]),
                                                torch.zeros(2, 3, 4)), ValueError, ["noise", "(2, 3, 4, 4)"]),
    ("loss empty", lambda: denoising_loss(lambda x, t: x, S, torch.zeros(0, 3, 4, 4), torch.tensor([]).long(),
                                          torch.zeros(0, 3, 4, 4)), ValueError, ["x0", "non-empty"]),
    ("loss prediction", lambda: denoising_loss(lambda x, t: x, S, torch.zeros(2, 3), torch.tensor([1, 2]),
                                               torch.zeros(2, 3), prediction_type="x0"), ValueError,
     ["prediction_type", "epsilon", "x0"]),
    ("loss output shape", lambda: denoising_loss(lambda x, t: x[:, :1], S, torch.zeros(2, 3, 4, 4),
                                                 torch.tensor([1, 2]), torch.zeros(2, 3, 4, 4)), ValueError,
     ["shaped like x0", "(2, 3, 4, 4)", "(2, 1, 4, 4)"]),
    ("loss model", lambda: denoising_loss("unet", S, torch.zeros(2, 3), torch.tensor([1, 2]), torch.zeros(2, 3)),
     TypeError, ["callable", "str"]),
    ("ema decay", lambda: EMA(torch.nn.Linear(2, 2), decay=1.5), ValueError, ["decay", "1.5"]),
    ("ema model", lambda: EMA("model"), TypeError, ["nn.Module", "str"]),
    ("generate cond rank", lambda: generate(tiny_unet(), S, torch.zeros(2, 64), (3, 8, 8)), ValueError,
     ["(B >= 1, S, d)", "(2, 64)"]),
    ("generate shape", lambda: generate(tiny_unet(), S, C, (2, 3, 8, 8)), ValueError, ["(C, H, W)", "(2, 3, 8, 8)"]),
    ("edit batch", lambda: edit(tiny_unet(), S, torch.rand(3, 3, 8, 8), C), ValueError,
     ["B = len(cond)", "(3, 3, 8, 8)"]),
    ("edit strength", lambda: edit(tiny_unet(), S, torch.rand(2, 3, 8, 8), C, strength=0.0), ValueError,
     ["strength", "0.0"]),
    ("edit encoder only", lambda: edit(tiny_unet(), S, torch.rand(2, 3, 8, 8), C, encoder=lambda x: x), ValueError,
     ["encoder and decoder"]),
    ("generate guidance", lambda: generate(tiny_unet(), S, C, (3, 8, 8), -1.0), ValueError, ["guidance_scale"]),
]


@pytest.mark.parametrize("what,call,exception,words", BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_refused_with_expected_and_got(what, call, exception, words):
    with pytest.raises(exception) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


@pytest.mark.parametrize("prompts,words", [("a red circle.", ["non-empty list of str"]), ([], ["non-empty"]),
                                           ([1], ["list of str"]),
                                           (["a red circle " * 8], ["max_tokens=16", "tokens"])])
def test_text_states_refuses_bad_prompts(clip, tokenizer, prompts, words):
    with pytest.raises(ValueError) as info:
        text_states(clip, tokenizer, prompts)
    for word in words:
        assert word in str(info.value)


def test_clip_score_refuses_mismatched_batches(clip, tokenizer):
    with pytest.raises(ValueError, match=r"B = len\(prompts\) = 2"):
        clip_score(clip, tokenizer, torch.rand(3, 3, 24, 24), PROMPTS)
    with pytest.raises(TypeError, match="vitlib.clip.CLIP"):
        clip_score(tiny_unet(), tokenizer, torch.rand(2, 3, 24, 24), PROMPTS)
