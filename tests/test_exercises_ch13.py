"""Chapter 13's checkers accept a right answer and reject the usual wrong ones, naming the mistake; the right answers
agree with vitlib.scaling's fit and with a numerical minimisation of Hoffmann et al.'s loss. The stub, crash and
wrong-type checks for every chapter are in test_exercises.py."""

import re

import numpy as np
import pytest

from vitlib import scaling
from vitlib.exercises import ch13


def fit(x, L, E):
    slope, intercept = np.polyfit(np.log(x), np.log(L - E), 1)
    return float(np.exp(intercept)), float(-slope)


def compute_optimal(C, A, B, alpha, beta):
    # L(N) = A N^-alpha + B (C / 6N)^-beta; set dL/dN = 0
    N = (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (C / 6) ** (beta / (alpha + beta))
    return N, C / (6 * N)


SOLUTIONS = {ch13.check_fit_power_law: fit, ch13.check_compute_optimal: compute_optimal}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_fit_agrees_with_the_library_on_an_exact_law():
    x = np.geomspace(1e3, 1e6, 6)
    L = scaling.power_law(x, 0.8, 98.6, 0.92)
    A, alpha = fit(x, L, 0.8)
    assert abs(A - 98.6) < 1e-6 * 98.6 and abs(alpha - 0.92) < 1e-9


def test_compute_optimal_is_the_minimum_along_the_budget():
    C, A, B, alpha, beta, E = 1e21, 406.4, 410.7, 0.34, 0.28, 1.69
    N, D = compute_optimal(C, A, B, alpha, beta)
    assert abs(6 * N * D - C) < 1e-9 * C
    grid = N * np.geomspace(0.5, 2.0, 201)                     # other splits of the same budget
    loss = E + A / grid**alpha + B / (C / (6 * grid)) ** beta
    assert abs(grid[loss.argmin()] / N - 1) < 0.01
    # Chinchilla's own budget (5.76e23 FLOPs) lands near its 70B parameters and 1.4T tokens
    N, D = compute_optimal(5.76e23, A, B, alpha, beta)
    assert 2e10 < N < 1e11 and 1e12 < D < 5e12


WRONG = [
    (ch13.check_fit_power_law, lambda x, L, E: fit(x, L, 0.0), "the floor E not subtracted"),
    (ch13.check_fit_power_law, lambda x, L, E: (fit(x, L, E)[0], -fit(x, L, E)[1]), "alpha's sign"),
    (ch13.check_fit_power_law, lambda x, L, E: fit(x, L, E)[::-1], "(alpha, A) returned"),
    (ch13.check_compute_optimal, lambda C, A, B, a, b: compute_optimal(6 * C, A, B, a, b)[:1]
     + (C / compute_optimal(6 * C, A, B, a, b)[0],), "C = N D"),
    (ch13.check_compute_optimal, lambda *args: compute_optimal(*args)[::-1], "(D_opt, N_opt) returned"),
]


@pytest.mark.parametrize("checker, wrong, mistake", WRONG, ids=[f"{c.__name__}-{m}" for c, _, m in WRONG])
def test_checkers_name_the_mistake(checker, wrong, mistake, capsys):
    assert not checker(wrong)
    out = capsys.readouterr().out
    assert re.search(rf"likely mistake: [^\n]*{re.escape(mistake)}", out), out


@pytest.mark.parametrize("checker", SOLUTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [None, 3, "fit"], ids=["None", "int", "str"])
def test_checkers_want_a_function(checker, bad):
    with pytest.raises(TypeError, match="check expects the function to test"):
        checker(bad)
