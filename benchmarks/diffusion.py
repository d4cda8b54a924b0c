"""How fast chapter 09's sampling and training run: vitlib's loop against diffusers', DDPM against DDIM, pixel
against latent space, all measured in one run.

1. The vitlib sampling loop (vitlib.diffusion.sample) against the diffusers scheduler loop written out as diffusers'
   pipelines write it (set_timesteps, then per timestep: doubled batch, unet, guidance, scheduler.step), DDIM and
   DDPM, with the same UNet (t2i_shapes.config(), untrained: the speed does not depend on the weights), the same
   text states, guidance scale 3 (both run the doubled batch), the same steps and the same x_T. Target: vitlib's
   loop within 1.1x of diffusers'. Both draw the same noise, so they also give the same images (printed).
2. DDPM with 1000 steps against DDIM with 50 and 20: a DDPM step costs the same at any stride, so DDPM's time is
   that of ``--ddpm-timed`` strided DDPM steps, scaled to ``--ddpm-steps`` (stated in the table).
3. Pixel against latent sampling (DDIM, ``--compare-steps`` steps): the pixel UNet at 32x32x3 against the latent
   UNet (vitlib.recipes.t2i_shapes_latent.config() when that recipe exists, else FALLBACK_LATENT) at its latent
   size, plus the autoencoder's decoder when vitlib.autoencoder has one whose latents fit that UNet.
4. One training step (vitlib.train.train, AdamW, denoising loss) at batch ``--train-batch`` in pixel and in latent
   space (the latents precomputed, as the recipe does: the encoder is not in the step).
Functions are timed in turn, round after round, and each gets the median of its rounds (benchmarks/timing.py).

    python benchmarks/diffusion.py [--batch 8] [--compare-steps 20] [--ddim-steps 50 20] [--ddpm-steps 1000]
                                   [--ddpm-timed 50] [--train-batch 48] [--repeats 3] [--device cpu|cuda]
"""

import argparse
import importlib
import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from timing import medians  # benchmarks/timing.py, beside this script

from vitlib.diffusion import sample
from vitlib.diffusion_training import denoising_loss
from vitlib.recipes import t2i_shapes
from vitlib.train import train
from vitlib.unet import UNet, UNetConfig
from vitlib.utils import get_device

TARGET = 1.1            # vitlib loop / diffusers loop, at most
GUIDANCE = 3.0
TEXT_TOKENS = 16        # vitlib.t2i.MAX_TOKENS
IMAGE_SIZE = 32         # the pixel model's images
FALLBACK_LATENT = UNetConfig(in_channels=4, out_channels=4, sample_size=8, channels=(64, 128),
                             attention_levels=(0, 1), cond_dim=64, n_heads=4)


def latent_unet_config() -> tuple[UNetConfig, str]:
    """The latent recipe's UNet config when the recipe exists, else FALLBACK_LATENT; and where it came from."""
    try:
        recipe = importlib.import_module("vitlib.recipes.t2i_shapes_latent")
    except ModuleNotFoundError:
        return FALLBACK_LATENT, "fallback config (no latent recipe)"
    return recipe.config(), "t2i_shapes_latent.config()"


def latent_decoder(unet_config: UNetConfig, device):
    """(decode, row label, source): the ``decode`` of an autoencoder whose latents have the UNet's shape, or None when
    vitlib.autoencoder is missing or none fits. Tried in turn: the zoo checkpoint the latent recipe names
    (``AE_NAME``), the autoencoder recipe's ``config()``, AutoencoderConfig(image_size=32) (untrained: the speed
    does not depend on the weights)."""
    try:
        autoencoder = importlib.import_module("vitlib.autoencoder")
    except ModuleNotFoundError:
        return None, "decoder not included (no vitlib.autoencoder)", None
    from vitlib import zoo

    candidates = []
    try:
        name = getattr(importlib.import_module("vitlib.recipes.t2i_shapes_latent"), "AE_NAME", None)
    except ModuleNotFoundError:
        name = None
    if name in zoo.available():
        candidates.append((f"zoo {name!r}", lambda: zoo.load(name)))
    try:
        recipe = importlib.import_module("vitlib.recipes.autoencoder_shapes")
        candidates.append(("autoencoder_shapes.config()", lambda: autoencoder.Autoencoder(recipe.config())))
    except ModuleNotFoundError:
        pass
    candidates.append((f"AutoencoderConfig(image_size={IMAGE_SIZE})", lambda: autoencoder.Autoencoder(
        autoencoder.AutoencoderConfig(image_size=IMAGE_SIZE, latent_channels=unet_config.in_channels))))
    side = unet_config.sample_size
    for source, make in candidates:
        model = make()
        if tuple(model.config.latent_shape) == (unet_config.in_channels, side, side):
            image = model.config.image_size
            return model.to(device).eval().decode, f"decoder {side}x{side} -> {image}x{image}", source
    return None, f"decoder not included (no autoencoder gives {side}x{side} latents)", None


def vitlib_loop(model, schedule, shape, steps, method, cond, seed=0):
    """vitlib.diffusion.sample with guidance: the loop under test."""
    g = torch.Generator().manual_seed(seed)
    return sample(model, schedule, shape, steps=steps, method=method, generator=g, cond=cond,
                  guidance_scale=GUIDANCE)


@torch.no_grad()
def diffusers_loop(model, scheduler, shape, steps, cond, seed=0):
    """The denoising loop of diffusers' text-to-image pipelines, with the same model call and zeros as the null
    condition (vitlib's default uncond)."""
    g = torch.Generator().manual_seed(seed)
    device = cond.device
    scheduler.set_timesteps(steps, device=device)
    context = torch.cat([torch.zeros_like(cond), cond])                        # (2B, S, d): uncond, cond
    x = randn_tensor(shape, generator=g, device=device, dtype=cond.dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(torch.cat([x, x]), t)              # (2B, C, H, W)
        out = model(x_in, t, context)
        out_uncond, out_cond = out.chunk(2)                                     # (B, C, H, W) each
        out = out_uncond + GUIDANCE * (out_cond - out_uncond)
        x = scheduler.step(out, t, x, generator=g).prev_sample
    return x


def training_step(model, schedule, x0, cond, seed=0):
    """A function running one step of vitlib.train.train (AdamW, denoising loss) on a fixed batch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)

    def loss_fn(m, batch):
        return denoising_loss(m, schedule, *batch)

    def step():
        t = torch.randint(schedule.num_train_timesteps, (len(x0),), generator=g).to(x0.device)   # (B,)
        eps = torch.randn(x0.shape, generator=g).to(x0.device)
        train(model, [(x0, t, eps, cond)], loss_fn, optimizer, steps=1, progress=False)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="images per sampling call (the UNet sees twice)")
    parser.add_argument("--compare-steps", type=int, default=20)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[50, 20])
    parser.add_argument("--ddpm-steps", type=int, default=1000)
    parser.add_argument("--ddpm-timed", type=int, default=50)
    parser.add_argument("--train-batch", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="default: vitlib.utils.get_device()")
    args = parser.parse_args()
    if min(args.batch, args.compare_steps, *args.ddim_steps, args.ddpm_timed, args.train_batch, args.repeats) < 1:
        parser.error("batch sizes, step counts and repeats must be >= 1")
    if not args.ddpm_timed <= args.ddpm_steps <= 1000:
        parser.error(f"need --ddpm-timed <= --ddpm-steps <= 1000, got {args.ddpm_timed} and {args.ddpm_steps}")
    device = get_device(args.device)
    torch.manual_seed(0)
    schedule = t2i_shapes.schedule()
    kwargs = dict(num_train_timesteps=schedule.num_train_timesteps, beta_schedule=schedule.beta_schedule,
                  beta_start=schedule.beta_start, beta_end=schedule.beta_end, clip_sample=False)
    ddpm, ddim = DDPMScheduler(**kwargs), DDIMScheduler(**kwargs)

    pixel_config = t2i_shapes.config()
    latent_config, latent_source = latent_unet_config()
    pixel, latent = UNet(pixel_config).to(device).eval(), UNet(latent_config).to(device).eval()
    decode, decoder_note, decoder_source = latent_decoder(latent_config, device)
    B, n, side = args.batch, args.compare_steps, latent_config.sample_size
    cond = torch.randn(B, TEXT_TOKENS, pixel_config.cond_dim).to(device)       # (B, S, d) text states
    pixel_shape = (B, pixel_config.in_channels, pixel_config.sample_size, pixel_config.sample_size)
    latent_shape = (B, latent_config.in_channels, side, side)

    same = {"ddim": vitlib_loop(pixel, schedule, pixel_shape, n, "ddim", cond)
            - diffusers_loop(pixel, ddim, pixel_shape, n, cond),
            "ddpm": vitlib_loop(pixel, schedule, pixel_shape, n, "ddpm", cond)
            - diffusers_loop(pixel, ddpm, pixel_shape, n, cond)}
    same = {k: d.abs().max().item() for k, d in same.items()}

    loops = {
        "vitlib ddim": lambda: vitlib_loop(pixel, schedule, pixel_shape, n, "ddim", cond),
        "diffusers ddim": lambda: diffusers_loop(pixel, ddim, pixel_shape, n, cond),
        "vitlib ddpm": lambda: vitlib_loop(pixel, schedule, pixel_shape, n, "ddpm", cond),
        "diffusers ddpm": lambda: diffusers_loop(pixel, ddpm, pixel_shape, n, cond),
        "ddpm timed": lambda: vitlib_loop(pixel, schedule, pixel_shape, args.ddpm_timed, "ddpm", cond),
        "latent": lambda: vitlib_loop(latent, schedule, latent_shape, n, "ddim", cond),
    }
    for k in args.ddim_steps:
        if k != n:
            loops[f"ddim {k}"] = lambda k=k: vitlib_loop(pixel, schedule, pixel_shape, k, "ddim", cond)
    t = medians(loops, device, args.repeats, sample_seconds=0)                 # one call a round
    t[f"ddim {n}"] = t["vitlib ddim"]
    if decode is not None:
        z = torch.randn(latent_shape).to(device)
        with torch.inference_mode():
            t["decode"] = medians({"decode": lambda: decode(z)}, device, args.repeats)["decode"]

    tb = args.train_batch
    g = torch.Generator().manual_seed(1)
    x_pixel = torch.rand((tb, *pixel_shape[1:]), generator=g).to(device) * 2 - 1
    z_latent = torch.randn((tb, *latent_shape[1:]), generator=g).to(device)
    c_train = torch.randn((tb, TEXT_TOKENS, pixel_config.cond_dim), generator=g).to(device)
    steps = medians({"pixel": training_step(UNet(pixel_config).to(device), schedule, x_pixel, c_train),
                     "latent": training_step(UNet(latent_config).to(device), schedule, z_latent, c_train)},
                    device, args.repeats, sample_seconds=0)

    print(f"chapter 09 diffusion on {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} rounds")
    print(f"sampling batch {B}, guidance {GUIDANCE:g} (the UNet runs 2 x {B}), untrained UNets, "
          f"cosine schedule")
    print(f"\n1. sampling loop, pixel UNet {pixel_config.sample_size}x{pixel_config.sample_size}x3, "
          f"{n} steps each, same x_T")
    print(f"  {'method':<8}{'vitlib s':>10}{'diffusers s':>13}{'vitlib/diffusers':>18}{'max |diff|':>12}")
    worst = 0.0
    for method in ("ddim", "ddpm"):
        ours, theirs = t[f"vitlib {method}"], t[f"diffusers {method}"]
        worst = max(worst, ours / theirs)
        print(f"  {method.upper():<8}{ours:>10.3f}{theirs:>13.3f}{ours / theirs:>17.2f}x{same[method]:>12.1e}")

    scale = args.ddpm_steps / args.ddpm_timed
    ddpm_time = t["ddpm timed"] * scale
    print(f"\n2. steps, vitlib loop, pixel UNet ({args.ddpm_timed} DDPM steps timed, x {scale:g})")
    print(f"  {'sampler':<12}{'steps':>6}{'s':>9}{'per step ms':>13}{'DDPM / this':>13}")
    rows = [("DDPM", args.ddpm_steps, ddpm_time)] + [("DDIM", k, t[f"ddim {k}"]) for k in args.ddim_steps]
    for name, k, s in rows:
        print(f"  {name:<12}{k:>6}{s:>9.2f}{s / k * 1e3:>13.1f}{ddpm_time / s:>12.1f}x")

    print(f"\n3. pixel vs latent sampling, DDIM {n} steps, batch {B}")
    print(f"  {'model':<48}{'s':>9}{'pixel / this':>14}")
    pixel_s, latent_s = t[f"ddim {n}"], t["latent"]
    print(f"  {f'pixel UNet {pixel_config.sample_size}x{pixel_config.sample_size}x3':<48}{pixel_s:>9.3f}"
          f"{1:>13.1f}x")
    label = f"latent UNet {side}x{side}x{latent_config.in_channels} ({latent_source})"
    print(f"  {label:<48}{latent_s:>9.3f}{pixel_s / latent_s:>13.1f}x")
    if decode is not None:
        print(f"  {decoder_note:<48}{t['decode']:>9.4f}")
        total = latent_s + t["decode"]
        print(f"  {'latent UNet + decoder':<48}{total:>9.3f}{pixel_s / total:>13.1f}x")
        print(f"  (the decoder: {decoder_source})")
    else:
        print(f"  {decoder_note}")

    print(f"\n4. one training step (vitlib.train.train, AdamW), batch {tb}")
    print(f"  {'model':<48}{'s':>9}{'pixel / this':>14}")
    print(f"  {'pixel UNet':<48}{steps['pixel']:>9.3f}{1:>13.1f}x")
    print(f"  {'latent UNet (latents precomputed)':<48}{steps['latent']:>9.3f}"
          f"{steps['pixel'] / steps['latent']:>13.1f}x")
    ok = worst <= TARGET and all(math.isfinite(d) and d < 1e-4 for d in same.values())
    print("\nPASS" if ok else "\nBELOW TARGET", f"(vitlib loop within {TARGET}x of diffusers' and the same images; "
          f"worst {worst:.2f}x)")


if __name__ == "__main__":
    main()
