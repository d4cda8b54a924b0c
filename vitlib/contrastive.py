"""Contrastive image-text losses, and the clamp that keeps their learnt temperature in range (chapter 05).

With image embeddings v_i and text embeddings t_j (row i of each batch is a matching pair), cosine similarities
s_ij = cos(v_i, t_j) and a temperature tau = 1 / exp(logit_scale):

    InfoNCE (CLIP):   L = 1/2 [ CE(s / tau) + CE(s^T / tau) ],   CE(l) = -1/N sum_i log softmax(l_i)_i
    hinge (margin):   L = 1/N sum_i sum_{j != i} ( [m - s_ii + s_ij]_+ + [m - s_ii + s_ji]_+ )
    sigmoid (SigLIP): L = -1/N sum_i sum_j log sigmoid( z_ij (s_ij exp(logit_scale) + logit_bias) ),  z_ij = +1 if i = j else -1

InfoNCE with hard negatives (NegCLIP): extra texts t~_k (a caption with two attributes swapped, say) join every
image's softmax, and extra images v~_k every text's, as wrong answers only:

    L = 1/2 [ CE([s, s(v, t~)] / tau) + CE([s^T, s(t, v~)] / tau) ]      (N, N + K) and (N, N + K') logits

CE(s / tau) alone is the one-directional loss -1/N sum_i log exp(s_ii / tau) / sum_j exp(s_ij / tau); CLIP averages
it with the text-to-image direction. In the hinge loss, with the cosine distance d = 1 - cos,
[d(v_i, t_i) - d(v_i, t_j) + m]_+ = [m - s_ii + s_ij]_+ ; m = 0 gives the margin-free form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_number, describe
from .constants import LOGIT_SCALE_MAX


def _check_embeds(a, b, names=("image_embeds", "text_embeds")) -> None:
    """Two 2-D floating-point tensors (N, D), (M, D) of one dtype on one device, D >= 1."""
    for name, t in zip(names, (a, b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (batch, dim), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating-point embeddings, got {describe(t)}")
        if t.shape[1] == 0:
            raise ValueError(f"{name} must have at least one feature, got {describe(t)}")
    if a.shape[1] != b.shape[1] or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must share the feature size, dtype and device: "
                         f"{describe(a)} on {a.device} vs {describe(b)} on {b.device}")


def _check_pair(image_embeds, text_embeds) -> None:
    _check_embeds(image_embeds, text_embeds)
    if image_embeds.shape != text_embeds.shape:
        raise ValueError(f"image and text embeddings must pair up one to one: image {tuple(image_embeds.shape)} "
                         f"vs text {tuple(text_embeds.shape)}")
    if image_embeds.shape[0] < 2:
        raise ValueError(f"a contrastive loss needs at least 2 pairs in the batch, got {image_embeds.shape[0]}")


def similarity(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity matrix s_ij = cos(v_i, t_j): (N_images, N_texts)."""
    _check_embeds(image_embeds, text_embeds)
    return F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T


def _scalar(value, name: str, like: torch.Tensor) -> torch.Tensor:
    """A one-element tensor as it is, or a python number as a tensor of ``like``'s dtype on its device."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar (one-element) tensor or a number, got {describe(value)}")
        if value.device != like.device and not (value.dim() == 0 and value.device.type == "cpu"):
            raise ValueError(f"{name} is on {value.device} but the embeddings are on {like.device}")
        return value
    check_number(value, name)
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE. Embeddings are normalised here; ``logit_scale`` = log(1 / tau) (log space, as CLIP): a
    one-element tensor (a learned parameter) or a plain number, e.g. ``math.log(1 / 0.07)``."""
    _check_pair(image_embeds, text_embeds)
    logit_scale = _scalar(logit_scale, "logit_scale", image_embeds)
    logits_per_image = similarity(image_embeds, text_embeds) * logit_scale.exp()  # (N, N), row i: image i vs texts
    targets = torch.arange(len(logits_per_image), device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.T, targets)) / 2


def clip_loss_with_negatives(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                             logit_scale: torch.Tensor | float, negative_texts: torch.Tensor | None = None,
                             negative_images: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE with hard negatives, as NegCLIP: ``negative_texts`` (K, D) are extra columns of every
    image's softmax, ``negative_images`` (K', D) extra columns of every text's; neither is anyone's right answer.
    With neither, this is ``clip_loss``."""
    _check_pair(image_embeds, text_embeds)
    logit_scale = _scalar(logit_scale, "logit_scale", image_embeds)
    s = similarity(image_embeds, text_embeds)                                    # (N, N)
    rows, cols = [s], [s.T]
    for name, extra, partners, out in (("negative_texts", negative_texts, image_embeds, rows),
                                       ("negative_images", negative_images, text_embeds, cols)):
        if extra is not None:
            _check_embeds(partners, extra, ("the batch's embeddings", name))
            out.append(similarity(partners, extra))                              # (N, K)
    logits_per_image = torch.cat(rows, dim=1) * logit_scale.exp()                # (N, N + K)
    logits_per_text = torch.cat(cols, dim=1) * logit_scale.exp()                 # (N, N + K')
    targets = torch.arange(len(s), device=s.device)
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


def hinge_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The margin loss: every wrong pair must be at least ``margin`` less similar than the right one, both ways.

    Written with the cosine distance d = 1 - cos, [d(v_i, t_i) - d(v_i, t_j) + m]_+ = [m - s_ii + s_ij]_+ .
    """
    _check_pair(image_embeds, text_embeds)
    check_number(margin.item() if isinstance(margin, torch.Tensor) and margin.numel() == 1 else margin, "margin", 0.0)
    s = similarity(image_embeds, text_embeds)  # (N, N)
    positive = s.diag()
    off_diagonal = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    image_to_text = (margin - positive[:, None] + s).clamp(min=0)[off_diagonal]  # image i against texts j != i
    text_to_image = (margin - positive[None, :] + s).clamp(min=0)[off_diagonal]  # text j against images i != j
    return (image_to_text.sum() + text_to_image.sum()) / len(s)


def siglip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor) -> torch.Tensor:
    """Pairwise sigmoid loss: each (image, text) pair is its own binary "do these match?" question.

    ``logit_scale`` (log space) and ``logit_bias``: one-element tensors (learned parameters) or plain numbers."""
    _check_pair(image_embeds, text_embeds)
    logit_scale = _scalar(logit_scale, "logit_scale", image_embeds)
    logit_bias = _scalar(logit_bias, "logit_bias", image_embeds)
    logits = similarity(text_embeds, image_embeds) * logit_scale.exp() + logit_bias  # (N_texts, N_images)
    z = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1  # +1 on the diagonal, -1 elsewhere
    return -F.logsigmoid(z * logits).sum(dim=-1).mean()


@torch.no_grad()
def clamp_logit_scale_(logit_scale: torch.Tensor) -> None:
    """Clamp a learnt ``logit_scale`` = ln(1 / tau) in place to [0, ln 100], i.e. 0.01 <= tau <= 1 (chapter 05).

    Called after each optimiser step, as OpenCLIP does: clamping inside forward instead would zero its gradient
    once it passed ln 100 and leave it stuck there."""
    logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)

