"""A tiny diffusers UNet2DConditionModel is a drop-in denoiser for chapter 09: it trains in vitlib's loop on the
course CLIP's text states of ShapesWorld captions, and samples through vitlib.t2i.generate with guidance, as the
vitlib UNet does. diffusers' forward is ``unet(sample, timestep, encoder_hidden_states)``: the loop's positional
``model(x_t, t, cond)`` reaches the cross-attention, and the returned ``.sample`` is read by both loops."""

import random

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from vitlib import zoo
from vitlib.data import to_tensor
from vitlib.diffusion_training import denoising_loss
from vitlib.recipes import t2i_shapes
from vitlib.t2i import generate, text_states
from vitlib.train import train
from vitlib.unet import UNet, UNetConfig

BATCH = 8
STEPS = 30
TEXT_WIDTH = 64       # the course CLIP's text width: cross_attention_dim / cond_dim
SIZE = 16             # the 32x32 renders, average-pooled: a quarter of the positions, for a fast test


def diffusers_unet() -> UNet2DConditionModel:
    """16x16x3, widths (32, 64), cross-attention to (S, 64) text states at 8x8 and in the middle block."""
    return UNet2DConditionModel(
        sample_size=SIZE, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=8, norm_num_groups=8)


def vitlib_unet() -> UNet:
    """The same sizes in vitlib's UNet: attention (self and cross) at 8x8 and in the middle."""
    return UNet(UNetConfig(in_channels=3, out_channels=3, sample_size=SIZE, channels=(32, 64), attention_levels=(1,),
                           n_heads=4, norm_groups=8, cond_dim=TEXT_WIDTH))


@pytest.fixture(scope="module")
def batch():
    """A fixed batch: renders in [-1, 1] (8, 3, 16, 16), their captions' text states (8, 16, 64), t and eps."""
    world = t2i_shapes.world()
    scenes = world.scenes(BATCH, "train")
    rng = random.Random(0)
    prompts = [world.caption(s, rng) for s in scenes]
    cond = text_states(zoo.load("clip-shapes", device="cpu"), world.tokenizer, prompts)
    g = torch.Generator().manual_seed(0)
    x0 = F.avg_pool2d(to_tensor(world.render_batch(scenes)), 32 // SIZE) * 2 - 1          # (8, 3, 16, 16)
    t = torch.randint(50, 1000, (BATCH,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return x0, cond, t, eps


def train_few_steps(model, batch, schedule):
    """STEPS AdamW steps of vitlib.train.train on the fixed batch; the logged losses."""
    x0, cond, t, eps = batch

    def loss_fn(m, b):
        return denoising_loss(m, schedule, *b)

    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = train(model, [(x0, t, eps, cond)] * STEPS, loss_fn, optimizer, steps=STEPS, progress=False)
    return history["loss"]


@pytest.mark.parametrize("make", [diffusers_unet, vitlib_unet], ids=["diffusers", "vitlib"])
def test_denoiser_trains_in_the_vitlib_loop_and_samples_with_guidance(make, batch):
    torch.manual_seed(0)
    model = make()
    schedule = t2i_shapes.schedule()
    losses = train_few_steps(model, batch, schedule)
    assert len(losses) == STEPS and all(torch.isfinite(torch.tensor(losses)))
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"{make.__name__}: loss {first:.3f} -> {last:.3f} over {STEPS} steps"

    cond = batch[1][:2]
    g = torch.Generator().manual_seed(0)
    images = generate(model, schedule, cond, (3, SIZE, SIZE), guidance_scale=3.0, steps=3, generator=g)
    assert images.shape == (2, 3, SIZE, SIZE) and torch.isfinite(images).all()
    assert images.min() >= 0 and images.max() <= 1
    assert model.training, "generate restores the training mode"
    again = generate(model, schedule, cond, (3, SIZE, SIZE), guidance_scale=3.0, steps=3,
                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(images, again, atol=0, rtol=0)                  # seeded: the same images


def test_diffusers_unet_reads_the_text_states_positionally(batch):
    """model(x, t, cond) fills encoder_hidden_states: another prompt gives another prediction."""
    torch.manual_seed(0)
    model = diffusers_unet().eval()
    x0, cond, t, _ = batch
    with torch.no_grad():
        out = model(x0[:2], t[:2], cond[:2]).sample
        keyword = model(x0[:2], t[:2], encoder_hidden_states=cond[:2]).sample
        other = model(x0[:2], t[:2], cond[[1, 0]]).sample
    torch.testing.assert_close(out, keyword, atol=0, rtol=0)
    assert (out - other).abs().max() > 1e-4
