"""Checkers for chapter 07's exercises: seed 001's attention fusion, Flamingo's gated residual, the projector's
parameter count, and flattening the patches for concatenation. Each compares your answer with ``vitlib.fusion``'s
and names the usual mistakes."""

from __future__ import annotations

import math

import torch

from . import Case, check, function_name


def _attention_fusion(V: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    alpha = (V @ v_t[:, :, None])[..., 0].div(math.sqrt(V.shape[-1])).softmax(dim=-1)   # (B, S)
    return (alpha[:, :, None] * V).sum(dim=1)                                             # (B, d)


def check_attention_fusion(attention_fusion) -> bool:
    """``attention_fusion(V, v_t)``: patches V (B, S, d), text vector v_t (B, d) -> v_it (B, d) =
    sum_j alpha_j v_j with alpha = softmax_j(v_j^T v_t / sqrt(d))."""
    cases = []
    for i, (B, S, d) in enumerate(((2, 9, 8), (3, 4, 16), (1, 6, 4))):
        g = torch.Generator().manual_seed(70 + i)
        V, v_t = torch.randn(B, S, d, generator=g) * 2, torch.randn(B, d, generator=g)
        scores = (V @ v_t[:, :, None])[..., 0]                                           # (B, S)
        mistakes = {
            "no 1 / sqrt(d): the softmax is too peaked": (scores.softmax(-1)[:, :, None] * V).sum(1),
            "alpha returned instead of the weighted sum v_it": (scores / math.sqrt(d)).softmax(-1),
            "the mean of the patches: alpha ignores the text": V.mean(1),
            "softmax over the batch (dim 0) instead of over the patches":
                ((scores / math.sqrt(d)).softmax(0)[:, :, None] * V).sum(1),
            "the raw scores used as weights, without the softmax": ((scores / math.sqrt(d))[:, :, None] * V).sum(1)}
        cases.append(Case(args=(V, v_t), expected=_attention_fusion(V, v_t), label=f"B={B}, S={S}, d={d}",
                          mistakes=mistakes))
    return check(attention_fusion, cases, name=function_name(attention_fusion, "attention_fusion"))


def check_gated_residual(gated_residual) -> bool:
    """``gated_residual(x, branch, alpha)``: Flamingo's x + tanh(alpha) * branch, alpha a 0-d tensor."""
    cases = []
    for i, a in enumerate((0.0, 0.5, -1.5)):
        g = torch.Generator().manual_seed(80 + i)
        x, branch, alpha = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g), torch.tensor(a)
        cases.append(Case(args=(x, branch, alpha), expected=x + alpha.tanh() * branch, label=f"alpha={a}", mistakes={
            "sigmoid(alpha) gates at 1/2 when alpha = 0, so the new block changes the frozen LM from the start":
                x + alpha.sigmoid() * branch,
            "alpha without tanh: unbounded, and the gate can flip sign without limit": x + alpha * branch,
            "tanh(alpha) * (x + branch) scales the residual stream too: at alpha = 0 it erases x":
                alpha.tanh() * (x + branch),
            "the residual x dropped": alpha.tanh() * branch}))
    return check(gated_residual, cases, name=function_name(gated_residual, "gated_residual"))


def _projector_parameters(d_image: int, d_model: int, kind: str) -> int:
    first = d_image * d_model + d_model
    return first if kind == "linear" else first + d_model * d_model + d_model


def check_projector_parameters(projector_parameters) -> bool:
    """``projector_parameters(d_image, d_model, kind)``: the parameters of ``vitlib.fusion.Projector`` (weights and
    biases): kind "linear" (W V + b) or "mlp" (W_2 GELU(W_1 V + b_1) + b_2)."""
    cases = []
    for d_image, d_model, kind in ((64, 64, "linear"), (64, 64, "mlp"), (1024, 4096, "mlp"), (768, 512, "linear")):
        expected = _projector_parameters(d_image, d_model, kind)
        mistakes = {"the biases forgotten": expected - (d_model if kind == "linear" else 2 * d_model),
                    "the linear projector counted with two layers, or the mlp with one":
                        _projector_parameters(d_image, d_model, "mlp" if kind == "linear" else "linear")}
        if kind == "mlp":
            mistakes["the second layer counted as d_image x d_model: it maps d_model to d_model"] = \
                2 * (d_image * d_model + d_model)
        cases.append(Case(args=(d_image, d_model, kind), expected=expected, label=f"{kind} {d_image} -> {d_model}",
                          mistakes=mistakes))
    return check(projector_parameters, cases, name=function_name(projector_parameters, "projector_parameters"))


def check_flatten_patches(flatten_patches) -> bool:
    """``flatten_patches(V)``: patches V (B, S, d) -> (B, S * d), patch by patch: [v_1 ; v_2 ; ... ; v_S]."""
    cases = []
    for i, (B, S, d) in enumerate(((2, 9, 4), (1, 3, 5))):
        V = torch.randn(B, S, d, generator=torch.Generator().manual_seed(90 + i))
        cases.append(Case(args=(V,), expected=V.reshape(B, S * d), label=f"B={B}, S={S}, d={d}", mistakes={
            "feature-major order (B, d, S) flattened: still every number, but patch j's features are no longer "
            "side by side": V.transpose(1, 2).reshape(B, S * d),
            "the mean over patches: that is the pooling this exercise replaces": V.mean(1)}))
    return check(flatten_patches, cases, name=function_name(flatten_patches, "flatten_patches"))
