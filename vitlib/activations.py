"""The feed-forward networks' nonlinearities, by the names configs use (chapter 03; chapter 13 loads real models).

    "gelu"        GELU(x) = x Phi(x)                                          exact (erf), the course's default
    "gelu_tanh"   ~ 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))           GPT-2's "gelu_new"
    "quick_gelu"  ~ x sigmoid(1.702 x)                                        OpenAI CLIP's
    "relu"        max(0, x)                                                   the original transformer's
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "QuickGELU"]


class QuickGELU(nn.Module):
    """x sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with (transformers' "quick_gelu")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "gelu_tanh": partial(nn.GELU, approximate="tanh"),
               "quick_gelu": QuickGELU}
