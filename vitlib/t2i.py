"""Text-to-image with a diffusion model: the prompt's token states from a frozen text encoder, cross-attended by the
UNet, and classifier-free guidance; CLIPScore to grade the result (chapter 09).

    c = H_text(prompt) * mask              (B, S, d): the course CLIP text tower's hidden states, padding zeroed
    eps_hat = eps_theta(x_t, t, 0) + w (eps_theta(x_t, t, c) - eps_theta(x_t, t, 0))    (Ho & Salimans 2022)
    CLIPScore(I, prompt) = 2.5 max(cos(E_I(I), E_T(prompt)), 0)                        (Hessel et al. 2021)

Zeroed padding makes the null condition (all zeros, dropped in training with probability p_uncond) the limit of
an ever shorter prompt. SDEdit (Meng et al. 2022) edits an image x_0 by noising it to an intermediate t and
denoising under a new prompt: low t keeps the layout, high t frees it. In latent diffusion (Rombach et al. 2022)
the same UNet denoises z = E(x) of an autoencoder and images are decoded from the sampled z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import metrics
from .checks import check_int, check_number, describe
from .clip import CLIP
from .diffusion import NoiseSchedule, sample

__all__ = ["text_states", "generate", "edit", "clip_score", "MAX_TOKENS"]

MAX_TOKENS = 16    # every prompt of the world fits with <bos> and <eos>


def _check_prompts(prompts) -> None:
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts \
            or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of str, got {prompts!r:.80}")


@torch.no_grad()
def text_states(clip: CLIP, tokenizer, prompts: list[str], max_tokens: int = MAX_TOKENS,
                batch_size: int = 1024) -> torch.Tensor:
    """c (len(prompts), max_tokens, text_width): the frozen text tower's last hidden states, zero after <eos>."""
    if not isinstance(clip, CLIP):
        raise TypeError(f"clip must be a vitlib.clip.CLIP, got {describe(clip)}")
    _check_prompts(prompts)
    check_int(max_tokens, "max_tokens", 2, clip.config.max_len)
    device, out = next(clip.parameters()).device, []
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[i:i + batch_size]), add_bos=True, add_eos=True)
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)      # (b, T)
        if ids.shape[1] > max_tokens:
            raise ValueError(f"a prompt has {ids.shape[1]} tokens with <bos>/<eos>; at most max_tokens="
                             f"{max_tokens} fit: {prompts[i + int(mask.sum(1).argmax())]!r}")
        h = clip.text(ids, mask) * mask[..., None].to(torch.float32)                         # (b, T, d)
        out.append(F.pad(h, (0, 0, 0, max_tokens - h.shape[1])))                          # (b, max_tokens, d)
    return torch.cat(out)


@torch.no_grad()
def generate(model, schedule: NoiseSchedule, cond: torch.Tensor, shape: tuple[int, ...], guidance_scale: float = 3.0,
             steps: int = 20, generator: torch.Generator | None = None, decoder=None, batch_size: int = 256,
             prediction_type: str = "epsilon", clip_sample: bool = False) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] for text states ``cond`` (B, S, d) by guided DDIM (eta 0) with an nn.Module
    ``model``: x_T of ``shape`` per prompt ((C, H, W) of the pixels, or of the latent when ``decoder`` maps
    latents to images in [0, 1]); in pixel space the model's [-1, 1] is mapped to [0, 1]. The batch is drawn in
    chunks of ``batch_size``, in order, from one ``generator``. ``clip_sample`` clips x0_hat to [-1, 1] in every
    step, as diffusers' schedulers do by default: near t = T an epsilon-predicting model's x0_hat divides its error
    by sqrt(alpha_bar_t), which the cosine schedule makes tiny."""
    if not isinstance(cond, torch.Tensor) or cond.dim() != 3 or len(cond) == 0:
        raise ValueError(f"cond must be text states (B >= 1, S, d), got {describe(cond)}")
    if not isinstance(shape, tuple) or len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W) of one sample, got {shape!r}")
    check_number(guidance_scale, "guidance_scale", 0.0)
    check_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    try:
        out = []
        for i in range(0, len(cond), batch_size):
            c = cond[i:i + batch_size]
            x = sample(model, schedule, (len(c), *shape), steps=steps, method="ddim", generator=generator, cond=c,
                       guidance_scale=guidance_scale, prediction_type=prediction_type,
                       clip_sample=clip_sample)                                             # (b, C, H, W)
            out.append(((x + 1) / 2 if decoder is None else decoder(x)).clamp(0, 1))
        return torch.cat(out)
    finally:
        model.train(was_training)


@torch.no_grad()
def edit(model, schedule: NoiseSchedule, images: torch.Tensor, cond: torch.Tensor, strength: float = 0.6,
         guidance_scale: float = 3.0, steps: int = 20, generator: torch.Generator | None = None, encoder=None,
         decoder=None, prediction_type: str = "epsilon", clip_sample: bool = False) -> torch.Tensor:
    """SDEdit: images (B, 3, H, W) in [0, 1] redrawn under text states ``cond`` (B, S, d) by the last
    int(strength * steps) of ``steps`` guided DDIM steps, from q_sample at the first of them. Pixel models work in
    [-1, 1]; latent ones with ``encoder`` (images -> latents) and ``decoder`` (latents -> images)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point() \
            or not isinstance(cond, torch.Tensor) or len(images) != len(cond) or len(images) == 0:
        raise ValueError(f"images must be float (B >= 1, 3, H, W) with B = len(cond); got images "
                         f"{describe(images)} and cond {describe(cond)}")
    if (encoder is None) != (decoder is None):
        raise ValueError("a latent model needs both encoder and decoder; a pixel model neither")
    x0 = images * 2 - 1 if encoder is None else encoder(images)                             # (B, C, h, w)
    was_training = model.training
    model.eval()
    try:
        x = sample(model, schedule, tuple(x0.shape), steps=steps, method="ddim", generator=generator, cond=cond,
                   guidance_scale=guidance_scale, init=x0, strength=strength, prediction_type=prediction_type,
                   clip_sample=clip_sample)
    finally:
        model.train(was_training)
    return ((x + 1) / 2 if decoder is None else decoder(x)).clamp(0, 1)


def clip_score(clip: CLIP, tokenizer, images: torch.Tensor, prompts: list[str], w: float = 2.5) -> torch.Tensor:
    """CLIPScore (B,) = w max(cos(E_I(image_i), E_T(prompt_i)), 0) for matching rows of images and prompts: this
    chapter's argument order for ``vitlib.metrics.clip_score``, which computes it."""
    _check_prompts(prompts)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) != len(prompts):
        raise ValueError(f"images must be (B, 3, H, W) with B = len(prompts) = {len(prompts)}, got {describe(images)}")
    return metrics.clip_score(clip, images, list(prompts), tokenizer, w)
