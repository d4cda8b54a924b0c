"""Checkers for chapter 13's exercises: fitting a power law with a known floor, and the compute-optimal split of a
training budget between parameters and data. Each compares your answer with the closed form and names the usual
mistakes.

    L(x) = E + A x^(-alpha)   =>   log(L - E) = log A - alpha log x          a straight line in log-log axes
    min_{N, D} E + A / N^alpha + B / D^beta   subject to  6 N D = C           (Hoffmann et al., 2022)
        N_opt = G (C / 6)^(beta / (alpha + beta)),  G = (alpha A / (beta B))^(1 / (alpha + beta)),  D_opt = C / (6 N_opt)
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import Case, check, function_name, kind, short_repr

__all__ = ["check_fit_power_law", "check_compute_optimal"]


def _callable(fn) -> None:
    if not callable(fn):
        raise TypeError(f"check expects the function to test, got {short_repr(fn)}")


def _close(rtol: float):
    """compare(got, expected) for (float, float) answers: each within rtol of the expected, relatively."""
    def same_pair(got, expected) -> bool:
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, float) for v in got)):
            raise AssertionError(f"expected a tuple of two floats, got {kind(got)}")
        return all(abs(g - e) <= rtol * abs(e) for g, e in zip(got, expected))
    return same_pair


def _line(x, y) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(intercept), float(slope)


def _as_pair(got):
    """A (float, float) answer as a tuple of floats, anything else unchanged (so the checker reports it)."""
    if isinstance(got, (tuple, list)) and len(got) == 2:
        try:
            return tuple(float(v) for v in got)
        except (TypeError, ValueError):
            return got
    return got


def check_fit_power_law(fit) -> bool:
    """``fit(x, L, E)``: sizes x (array), losses L (array) and the floor E -> (A, alpha) of the L = E + A x^(-alpha)
    that fits best in least squares on log(L - E) against log x (natural logarithms; alpha > 0 when L falls)."""
    _callable(fit)
    rng = np.random.default_rng(130)
    examples = [(np.array([1e3, 1e4, 1e5, 1e6]), 0.8, 50.0, 0.5, 0.0, "exact, four sizes"),
                (np.geomspace(3e3, 6e5, 6), 0.8, 98.6, 0.92, 0.02, "the chapter's sizes, noisy"),
                (np.geomspace(10, 1e4, 8), 1.7, 4.0, 0.3, 0.05, "a slow law, noisy")]
    cases = []
    for x, E, A, alpha, noise, label in examples:
        L = E + A * x ** -alpha * np.exp(noise * rng.standard_normal(len(x)))
        b, m = _line(np.log(x), np.log(L - E))
        expected = (math.exp(b), -m)
        b_raw, m_raw = _line(np.log(x), np.log(L))
        b10, _ = _line(np.log10(x), np.log10(L - E))
        cases.append(Case(args=(x.copy(), L.copy(), E), expected=expected, label=label, mistakes={
            "the floor E not subtracted: L - E, not L, falls as a power of x": (math.exp(b_raw), -m_raw),
            "alpha's sign: the slope of the line is -alpha": (math.exp(b), m),
            "A from a base-10 intercept taken with exp: use one logarithm throughout": (math.exp(b10), -m),
            "(alpha, A) returned: the answer is (A, alpha)": (-m, math.exp(b))}))

    @functools.wraps(fit)
    def scored(x, L, E):
        return _as_pair(fit(x, L, E))

    return check(scored, cases, name=function_name(fit, "fit"), compare=_close(1e-4))


def _optimal(C, A, B, alpha, beta, flops_per=6.0, exponent=None):
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / flops_per) ** ((beta if exponent is None else exponent) / (alpha + beta))
    return N, C / (flops_per * N)


def check_compute_optimal(compute_optimal) -> bool:
    """``compute_optimal(C, A, B, alpha, beta)``: a training budget of C FLOPs (C = 6 N D) and the fitted
    L(N, D) = E + A / N^alpha + B / D^beta -> (N_opt, D_opt), the parameters and training tokens of least loss."""
    _callable(compute_optimal)
    chinchilla = (406.4, 410.7, 0.34, 0.28)               # Hoffmann et al.'s fitted A, B, alpha, beta
    examples = [(5.76e23, *chinchilla, "Chinchilla's budget"), (1e18, *chinchilla, "a small budget"),
                (1e21, 100.0, 1000.0, 0.5, 0.25, "another law")]
    cases = []
    for C, A, B, alpha, beta, label in examples:
        N, D = _optimal(C, A, B, alpha, beta)
        cases.append(Case(args=(C, A, B, alpha, beta), expected=(N, D), label=label, mistakes={
            "C = N D: training costs about 6 N D FLOPs (2 forward and 4 backward per parameter and token)":
                _optimal(C, A, B, alpha, beta, flops_per=1.0),
            "(D_opt, N_opt) returned: the answer is (N_opt, D_opt)": (D, N),
            "exponent alpha / (alpha + beta): N_opt grows as (C/6)^(beta / (alpha + beta))":
                _optimal(C, A, B, alpha, beta, exponent=alpha)}))

    @functools.wraps(compute_optimal)
    def scored(C, A, B, alpha, beta):
        return _as_pair(compute_optimal(C, A, B, alpha, beta))

    return check(scored, cases, name=function_name(compute_optimal, "compute_optimal"),
                 compare=_close(1e-3))
