"""Scaling laws: how the loss falls with parameters and with data (chapter 13).

Kaplan et al. (2020) found a language model's test loss to follow a power law in the number of non-embedding
parameters N when data is not the limit, and in the number of training tokens D when the model is not; Hoffmann
et al. (2022) fit both at once with an irreducible term E:

    L(N) = E + A N^(-alpha)            L(D) = E + B D^(-beta)            L(N, D) = E + A N^(-alpha) + B D^(-beta)

``fit_power_law`` fits the one-variable form by least squares on L: for each candidate E below the smallest loss,
log(L - E) = log A - alpha log N is a straight line, fitted exactly; the E whose line leaves the smallest squared
error in L itself wins (a coarse grid of E, then a fine one around its best). ``non_embedding_parameters`` counts N as Kaplan does.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from .checks import describe

__all__ = ["fit_power_law", "power_law", "non_embedding_parameters"]


def power_law(x, E: float, A: float, alpha: float):
    """L(x) = E + A x^(-alpha), for a number or an array."""
    return E + A * np.asarray(x, dtype=float) ** (-alpha)


def fit_power_law(x, loss, n_grid: int = 2000) -> dict[str, float]:
    """{"E", "A", "alpha", "rmse"}: the L = E + A x^(-alpha) closest to ``loss`` in squared error, E in [0, min L).
    Needs at least three points with distinct positive x and finite losses."""
    x, loss = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    if x.ndim != 1 or x.shape != loss.shape or len(x) < 3:
        raise ValueError(f"x and loss must be two 1-D arrays of the same length >= 3, got {describe(x)} and "
                         f"{describe(loss)}")
    if not (np.isfinite(x).all() and np.isfinite(loss).all()) or (x <= 0).any() or len(set(x.tolist())) < 3:
        raise ValueError(f"x must hold at least three distinct positive sizes and the losses must be finite, got "
                         f"x={x.tolist()} and loss={loss.tolist()}")
    log_x = np.log(x)

    def best_on(grid):
        best = None
        for E in grid:
            slope, intercept = np.polyfit(log_x, np.log(loss - E), 1)      # log(L - E) = log A - alpha log x
            err = float(np.mean((power_law(x, E, math.exp(intercept), -slope) - loss) ** 2))
            if best is None or err < best[0]:
                best = (err, E, math.exp(intercept), -slope)
        return best

    coarse = np.linspace(0.0, loss.min(), n_grid, endpoint=False)
    E0, step = best_on(coarse)[1], coarse[1]                               # then a finer grid around the best E
    err, E, A, alpha = best_on(np.linspace(max(0.0, E0 - step), min(E0 + step, loss.min() - step / n_grid), n_grid))
    return {"E": float(E), "A": float(A), "alpha": float(alpha), "rmse": math.sqrt(err)}


def non_embedding_parameters(model: nn.Module) -> int:
    """N: the parameters outside the token and position embedding tables (Kaplan et al.'s count; with a tied LM
    head, the head is the token table)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {describe(model)}")
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in tables)
