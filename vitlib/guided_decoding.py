"""Vision-guided decoding: three ways an image steers a language model's choice of the next token (chapter 10,
seed 004).

(a) CLIP re-ranking: of an image I's candidate captions c_1..c_N (a beam search's returns, say), keep
        c* = argmax_n cos(E_I(I), E_T(c_n))
(b) MAGIC (Su et al. 2022, "Language Models Can See"): a text-only LM captions an image, CLIP steering each step.
    Of the LM's k most probable next tokens V_k,
        x_t = argmax_{v in V_k}  (1 - alpha) p_LM(v | x_<t)  -  alpha max_{j<t} cos(h_v, h_j)  +  beta f(v)
        f(v) = exp(s_v) / sum_{z in V_k} exp(s_z),    s_v = exp(logit_scale) cos(E_I(I), E_T([x_<t, v]))
    The middle term is SimCTG's degeneration penalty (Su et al. 2022, contrastive search) on the LM's last states
    h: a candidate whose state resembles an earlier token's would repeat what the prefix said.
(c) Visual contrastive decoding (Leng et al. 2024, VCD): a captioner reading the image v, contrasted with the same
    captioner reading a distorted v', inside the adaptive plausibility constraint of the clean reading:
        l_cd(x) = (1 + a) l(x | v, x_<t) - a l(x | v', x_<t)   if p(x | v, x_<t) >= beta max_w p(w | v, x_<t)
        l_cd(x) = -inf                                          otherwise
    v' = diffusion noise on v (``distort``): what the model says about v' comes from its language prior, which
    the contrast subtracts.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int, check_like, check_number, describe
from .clip import CLIP, encode_texts
from .decoding import _check_loop, _evaluating, _reorder_cache
from .diffusion import NoiseSchedule
from .vision import check_images

__all__ = ["clip_rerank", "degeneration_penalty", "magic_search", "ContrastiveModel", "distort"]


def _check_pixels(images, batch: int | None = None) -> None:
    """images: a float tensor (B, 3, H, W), B >= 1 (= ``batch`` when given), values in [0, 1]."""
    check_images(images, 3)
    if images.shape[0] == 0:
        raise ValueError(f"images is an empty batch: {tuple(images.shape)}")
    if batch is not None and images.shape[0] != batch:
        raise ValueError(f"images has {images.shape[0]} images but input_ids has {batch} rows: one image per prompt")
    lo, hi = images.aminmax()
    if not (lo >= 0 and hi <= 1):   # NaN fails too
        raise ValueError(f"images must be in [0, 1], got values in [{lo.item():.3g}, {hi.item():.3g}]")


def _check_clip(clip, images, batch: int | None = None) -> None:
    """clip a CLIP; images as ``_check_pixels`` wants them, on its device and dtype, of its image_size."""
    if not isinstance(clip, CLIP):
        raise TypeError(f"clip must be a vitlib.clip.CLIP, got {describe(clip)}")
    _check_pixels(images, batch)
    check_like(images, "images", clip.logit_scale)
    size = clip.config.image_size
    if images.shape[-2:] != (size, size):
        raise ValueError(f"images must be {size}x{size} for this CLIP, got {tuple(images.shape)}")


# ----- (a) CLIP re-ranking -----------------------------------------------------------------------------------------
@torch.no_grad()
def clip_rerank(clip: CLIP, tokenizer, images: torch.Tensor, candidates) -> tuple[list[str], torch.Tensor]:
    """Per image I_b of images (B, 3, S, S) in [0, 1], its candidate with the highest cos(E_I(I_b), E_T(c)):
    (best texts, a list of B str; scores (B, N), the cosines).

    ``candidates``: one non-empty list of str per image, e.g. a beam search's returns decoded; N is the longest
    list, and the slots a shorter list lacks score -inf. Texts are tokenized with <bos> and <eos> (CLIP pools at
    <eos>). The raw cosine, not CLIPScore (``metrics.clip_score``): 2.5 max(cos, 0) would tie every negative one.
    """
    _check_clip(clip, images)
    if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)) or len(candidates) != len(images):
        got = f"{len(candidates)} lists" if isinstance(candidates, (list, tuple)) else describe(candidates)
        raise ValueError(f"candidates must be one list of texts per image ({len(images)}), got {got}")
    for b, texts in enumerate(candidates):
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts \
                or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"candidates[{b}] must be a non-empty list of str, got {texts!r:.80}")
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be callable (texts -> input_ids, attention_mask), got {describe(tokenizer)}")
    dev = images.device
    sizes = torch.tensor([len(texts) for texts in candidates], device=dev)                # (B,)
    owner = torch.repeat_interleave(sizes)                                                 # (sum N_b,): its image
    slot = torch.cat([torch.arange(n, device=dev) for n in sizes.tolist()])               # (sum N_b,): its place
    t = F.normalize(encode_texts(clip, tokenizer, [c for texts in candidates for c in texts], dev), dim=-1)
    v = F.normalize(clip.encode_image(images), dim=-1)                                     # (B, D)
    scores = torch.full((len(images), int(sizes.max())), float("-inf"), device=dev)       # (B, N)
    scores[owner, slot] = (v[owner] * t).sum(dim=-1)                                       # cos(v_b, t_n)
    best = scores.argmax(dim=1).tolist()
    return [texts[n] for texts, n in zip(candidates, best)], scores


# ----- (b) MAGIC ---------------------------------------------------------------------------------------------------
def degeneration_penalty(h_v: torch.Tensor, h_context: torch.Tensor) -> torch.Tensor:
    """SimCTG's degeneration penalty max_{j<t} cos(h_v, h_j): h_v (B, k, d) the states of k candidate tokens,
    h_context (B, t, d) those of the prefix's tokens -> (B, k)."""
    for name, h in (("h_v", h_v), ("h_context", h_context)):
        if not isinstance(h, torch.Tensor) or not h.is_floating_point() or h.dim() != 3 or 0 in h.shape:
            raise ValueError(f"{name} must be a float tensor (batch, n, d) with every size >= 1, got {describe(h)}")
    if h_v.shape[0] != h_context.shape[0] or h_v.shape[2] != h_context.shape[2]:
        raise ValueError(f"h_v (B, k, d) and h_context (B, t, d) must share B and d, got {tuple(h_v.shape)} and "
                         f"{tuple(h_context.shape)}")
    cos = F.normalize(h_v, dim=-1) @ F.normalize(h_context, dim=-1).transpose(1, 2)   # (B, k, t)
    return cos.amax(dim=-1)


@torch.no_grad()
def magic_search(lm: nn.Module, clip: CLIP, images: torch.Tensor, input_ids: torch.Tensor, max_new_tokens: int,
                 k: int = 5, alpha: float = 0.1, beta: float = 2.0, eos_token_id: int | None = None,
                 use_cache: bool = True) -> torch.Tensor:
    """MAGIC: extend input_ids (B, P) by up to ``max_new_tokens`` tokens, each the argmax of the score in the
    module docstring; returns (B, P + new), decoded in eval mode.

    images (B, 3, S, S) in [0, 1]: one per prompt row (for one image pass images[None] and a (1, P) prompt).
    ``lm``: a text-only LM with GPT's forward and ``return_hidden`` (``vitlib.transformer.GPT``); ``clip``: a CLIP
    over the same vocabulary (the course's gpt-shapes and clip-shapes share one). Step t, for each row:
      1. p = softmax(the LM's logits at the last position); V_k = its k most probable tokens, p_v their
         probabilities as they are (not renormalised over V_k, as in MAGIC's code).
      2. h_v = the LM's last state (after its final LayerNorm) at v's position in [x_<t, v]; h_j = the states at
         every earlier position, the prompt included: penalty_v = ``degeneration_penalty``.
      3. CLIP reads the ids [x_<t, v, <eos>] as they are: the prompt is part of the text CLIP sees. A prompt of
         <bos> alone (MAGIC's start token) gives exactly tokenizer(caption, add_bos=True, add_eos=True); words after
         <bos> should belong in the caption. f = softmax over V_k of s_v (logit_scale included; no logit_bias).
      4. x_t = argmax_{v in V_k} (1 - alpha) p_v - alpha penalty_v + beta f_v.
    alpha = beta = 0 is greedy decoding. A row that produced ``eos_token_id`` continues with it, and decoding stops
    once every row has. With ``use_cache`` the k candidates are one (B k, 1) batch on the prefix's cache; without,
    the (B k, P + t + 1) sequences are recomputed each step: the same tokens either way.
    """
    _check_loop(lm, input_ids, max_new_tokens, eos_token_id, None, use_cache)
    if "return_hidden" not in inspect.signature(lm.forward).parameters:
        raise TypeError(f"lm must return its last states, forward(..., return_hidden=True) as vitlib.transformer.GPT "
                        f"does, got {describe(lm)}")
    B, P = input_ids.shape
    _check_clip(clip, images, batch=B)
    V = lm.config.vocab_size
    if clip.config.vocab_size != V:
        raise ValueError(f"lm and clip must share one vocabulary, got vocab_size {V} and {clip.config.vocab_size}")
    if P + max_new_tokens + 1 > clip.config.max_len:
        raise ValueError(f"prompt length {P} + max_new_tokens {max_new_tokens} + <eos> exceeds CLIP's "
                         f"max_len={clip.config.max_len}")
    check_int(k, "k", maximum=V)
    check_number(alpha, "alpha", 0.0, 1.0)
    check_number(beta, "beta", 0.0)
    dev = input_ids.device
    with _evaluating(lm), _evaluating(clip):
        v_image = F.normalize(clip.encode_image(images), dim=-1)                      # (B, D)
        out = lm(input_ids, use_cache=use_cache, return_hidden=True)
        logits, h_context, past = out[0][:, -1].float(), out[-1], out[1] if use_cache else None   # h (B, P, d)
        eos = torch.full((B * k, 1), clip.config.eos_id, device=dev)                   # (B k, 1)
        ids, done = input_ids, torch.zeros(B, dtype=torch.bool, device=dev)
        for _ in range(max_new_tokens):
            p_k, v_k = logits.softmax(dim=-1).topk(k)                                  # (B, k): p_v and V_k
            extended = torch.cat([ids.repeat_interleave(k, dim=0), v_k.view(B * k, 1)], dim=1)   # (B k, P + t + 1)
            if use_cache:                                                              # row b k + i: b's i-th v
                past = _reorder_cache(lm, past, torch.arange(B, device=dev).repeat_interleave(k))
                logits_k, past, h_k = lm(extended[:, -1:], past_kv=past, use_cache=True, return_hidden=True)
            else:
                logits_k, h_k = lm(extended, return_hidden=True)                       # (B k, n, V), (B k, n, d)
            h_v = h_k[:, -1].view(B, k, -1)                                            # (B, k, d)
            text = clip.encode_text(torch.cat([extended, eos], dim=1))                 # (B k, D): E_T([x_<t, v])
            text = F.normalize(text, dim=-1).view(B, k, -1)                            # (B, k, D)
            s = clip.scale() * (text @ v_image[:, :, None]).squeeze(-1)                # (B, k)
            score = (1 - alpha) * p_k - alpha * degeneration_penalty(h_v, h_context) + beta * s.softmax(dim=-1)
            best = score.argmax(dim=-1)                                                # (B,)
            row = torch.arange(B, device=dev) * k + best                               # (B,): rows of the B k kept
            next_id = v_k.gather(1, best[:, None]).squeeze(1)                          # (B,)
            if eos_token_id is not None:                                               # a finished row repeats eos
                next_id = next_id.masked_fill(done, eos_token_id)
                done = done | (next_id == eos_token_id)
            ids = torch.cat([ids, next_id[:, None]], dim=1)                            # (B, P + t + 1)
            h_context = torch.cat([h_context, h_k[row, -1:]], dim=1)                   # (B, P + t + 1, d)
            logits = logits_k[row, -1].float()                                         # (B, V): p(. | x_<=t)
            if use_cache:
                past = _reorder_cache(lm, past, row)
            if eos_token_id is not None and done.all():
                break
    return ids


# ----- (c) visual contrastive decoding -----------------------------------------------------------------------------
class ContrastiveModel(nn.Module):
    """VCD as a model: forward(input_ids (B, T), past_kv=None, use_cache=False) -> l_cd (B, T, V) at every position
    (and the cache (model_v's, model_distorted's)), so that ``vitlib.decoding``'s greedy, sample and beam_search
    drive it unchanged.

    ``model_v`` and ``model_distorted``: two models with that interface over one vocabulary, e.g. a captioner bound
    to the images and to ``distort(images, ...)``. a >= 0 weighs the contrast; beta in [0, 1] cuts to the tokens
    the clean reading finds plausible (the argmax always stays). a = beta = 0 gives model_v's logits exactly.
    ``config`` gives the shared vocab_size and the smaller max_len; decoding puts both models in eval mode and
    afterwards in model_v's mode.
    """

    def __init__(self, model_v: nn.Module, model_distorted: nn.Module, a: float = 1.0, beta: float = 0.1):
        super().__init__()
        for name, model in (("model_v", model_v), ("model_distorted", model_distorted)):
            config = getattr(model, "config", None)
            if not isinstance(model, nn.Module) or not all(
                    isinstance(getattr(config, n, None), int) for n in ("vocab_size", "max_len")):
                raise TypeError(f"{name} must be an nn.Module whose config gives vocab_size and max_len, got "
                                f"{describe(model)}")
        if model_v.config.vocab_size != model_distorted.config.vocab_size:
            raise ValueError(f"model_v and model_distorted must share one vocabulary, got vocab_size "
                             f"{model_v.config.vocab_size} and {model_distorted.config.vocab_size}")
        check_number(a, "a", 0.0)
        check_number(beta, "beta", 0.0, 1.0)
        self.model_v, self.model_distorted, self.a, self.beta = model_v, model_distorted, a, beta
        self.config = SimpleNamespace(vocab_size=model_v.config.vocab_size,
                                      max_len=min(model_v.config.max_len, model_distorted.config.max_len))
        self.training = model_v.training

    def contrast(self, l_v: torch.Tensor, l_distorted: torch.Tensor) -> torch.Tensor:
        """l_cd = (1 + a) l_v - a l_distorted where p_v >= beta max_w p_v(w), -inf elsewhere (last dim = vocab)."""
        p_v = l_v.float().softmax(dim=-1)
        plausible = p_v >= self.beta * p_v.amax(dim=-1, keepdim=True)                  # (..., V)
        return ((1 + self.a) * l_v - self.a * l_distorted).masked_fill(~plausible, float("-inf"))

    def forward(self, input_ids: torch.Tensor, past_kv=None, use_cache: bool = False):
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {describe(use_cache)}")
        if past_kv is not None and not (isinstance(past_kv, (tuple, list)) and len(past_kv) == 2):
            raise ValueError(f"past_kv must be the (model_v cache, model_distorted cache) pair an earlier call "
                             f"returned, got {describe(past_kv)}")
        past_v, past_d = (None, None) if past_kv is None else past_kv
        out_v = self.model_v(input_ids, past_kv=past_v, use_cache=use_cache)
        out_d = self.model_distorted(input_ids, past_kv=past_d, use_cache=use_cache)
        if not use_cache:
            return self.contrast(out_v, out_d)
        return self.contrast(out_v[0], out_d[0]), (out_v[1], out_d[1])

    def reorder_cache(self, past_kv, beam_idx: torch.Tensor):
        """Beam search's reordering, applied to each model's cache as that model wants it."""
        return (_reorder_cache(self.model_v, past_kv[0], beam_idx),
                _reorder_cache(self.model_distorted, past_kv[1], beam_idx))


def distort(images: torch.Tensor, noise_step: int, generator: torch.Generator | None = None,
            schedule: NoiseSchedule | None = None) -> torch.Tensor:
    """VCD's distorted image v': forward-diffusion noise at step t = ``noise_step`` of ``schedule`` (by default
    ``NoiseSchedule()``, DDPM's 1000 linear betas) on images float (B, 3, H, W) in [0, 1]:

        x = 2 I - 1,    x' = sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) eps,    v' = clamp((x' + 1) / 2, 0, 1)

    eps ~ N(0, I) drawn with ``generator`` (on its device; the global generator without one). VCD noises the
    CLIP-normalised image and does not clamp; here v' stays an image in [0, 1] that the same model can read.
    VCD's code uses milder (sigmoid) betas than DDPM's, so choose t by alpha_bar_t = schedule.alpha_bar(t).
    """
    _check_pixels(images)
    schedule = NoiseSchedule() if schedule is None else schedule
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a vitlib.diffusion.NoiseSchedule, got {describe(schedule)}")
    check_int(noise_step, "noise_step", minimum=0, maximum=schedule.num_train_timesteps - 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
    on = images.device if generator is None else generator.device
    eps = torch.randn(images.shape, generator=generator, device=on, dtype=images.dtype).to(images.device)
    x_t = schedule.q_sample(2 * images - 1, noise_step, eps)                          # (B, 3, H, W) in ~[-1, 1]
    return ((x_t + 1) / 2).clamp(0, 1)
