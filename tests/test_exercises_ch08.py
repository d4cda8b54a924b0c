"""Chapter 08's checkers accept a right answer and reject the usual wrong ones, naming the mistake; their expected
answers agree with vitlib.diffusion. The stub, crash and wrong-type checks for every chapter are in
test_exercises.py."""

import math

import pytest
import torch

from vitlib.diffusion import NoiseSchedule
from vitlib.exercises import ch08


def _ab(t, betas):
    return torch.cumprod(1 - betas, dim=0)[t]


def q_sample(x0, t, noise, betas):
    a = _ab(t, betas).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def posterior_mean(x0, x_t, t, betas):
    ab = torch.cumprod(1 - betas, dim=0)
    a_t, a_s, beta = ab[t], ab[t - 1], betas[t]
    return (a_s.sqrt() * beta / (1 - a_t)) * x0 + ((1 - beta).sqrt() * (1 - a_s) / (1 - a_t)) * x_t


def ddim_step(eps_hat, x_t, alpha_bar_t, alpha_bar_s):
    x0_hat = (x_t - math.sqrt(1 - alpha_bar_t) * eps_hat) / math.sqrt(alpha_bar_t)
    return math.sqrt(alpha_bar_s) * x0_hat + math.sqrt(1 - alpha_bar_s) * eps_hat


def alpha_bar_last(beta_start, beta_end, T):
    return torch.prod(1 - torch.linspace(beta_start, beta_end, T)).item()   # fp32 is close enough


SOLUTIONS = {ch08.check_q_sample: q_sample, ch08.check_posterior_mean: posterior_mean,
             ch08.check_ddim_step: ddim_step, ch08.check_alpha_bar_last: alpha_bar_last}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch08.check_alpha_bar_last(lambda s, e, T: float(torch.prod(1 - torch.linspace(s, e, T,
                                                                                          dtype=torch.float64))))


def test_the_right_answers_are_vitlib_diffusion():
    schedule = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    x0, noise, x_t = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    t = torch.tensor([3, 700])
    torch.testing.assert_close(q_sample(x0, t, noise, schedule.betas), schedule.q_sample(x0, t, noise))
    for step in (1, 10, 999):   # fp32: diffusers' and vitlib's beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}
        torch.testing.assert_close(posterior_mean(x0, x_t, step, schedule.betas),
                                   schedule.posterior_mean(x0, x_t, step), atol=1e-4, rtol=1e-4)
        assert ch08.check_posterior_mean(lambda x0, x_t, t, betas: NoiseSchedule().posterior_mean(x0, x_t, t))
    for step, prev in ((999, 979), (20, -1)):
        ab_s = float(schedule.alpha_bar(prev))
        torch.testing.assert_close(ddim_step(noise, x_t, float(schedule.alphas_cumprod[step]), ab_s),
                                   schedule.ddim_step(noise, step, prev, x_t, eta=0.0), atol=1e-5, rtol=1e-5)
    assert math.isclose(alpha_bar_last(1e-4, 0.02, 1000), float(schedule.alphas_cumprod[-1]), rel_tol=1e-4)


def _ab_first_order(beta_start, beta_end, T):
    return math.exp(-float(torch.linspace(beta_start, beta_end, T, dtype=torch.float64).sum()))


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch08.check_q_sample, lambda x0, t, e, b: _ab(t, b).view(-1, 1, 1, 1) * x0
     + (1 - _ab(t, b).view(-1, 1, 1, 1)).sqrt() * e, "likely mistake: sqrt missing on alpha_bar"),
    (ch08.check_q_sample, lambda x0, t, e, b: (1 - b[t]).view(-1, 1, 1, 1).sqrt() * x0
     + b[t].view(-1, 1, 1, 1).sqrt() * e, "likely mistake: beta_t used instead of alpha_bar_t"),
    (ch08.check_q_sample, lambda x0, t, e, b: _ab(t, b).view(-1, 1, 1, 1).sqrt() * x0
     + (1 - _ab(t, b).view(-1, 1, 1, 1)) * e, "likely mistake: noise scale 1 - alpha_bar_t without the sqrt"),
    (ch08.check_q_sample, lambda x0, t, e, b: q_sample(x0, t, e, torch.cat([torch.zeros(1), b[:-1]])),
     "likely mistake: alpha_bar off by one"),
    (ch08.check_posterior_mean, lambda x0, xt, t, b: posterior_mean(xt, x0, t, b),
     "likely mistake: the two coefficients swapped"),
    (ch08.check_posterior_mean, lambda x0, xt, t, b: _ab(t, b).sqrt() * b[t] / (1 - _ab(t, b)) * x0
     + (1 - b[t]).sqrt() * xt, "likely mistake: alpha_bar_t where alpha_bar_{t-1} belongs"),
    (ch08.check_posterior_mean, lambda x0, xt, t, b: _ab(t - 1, b).sqrt() * b[t] / (1 - _ab(t, b)) * x0
     + (1 - b[t]) * (1 - _ab(t - 1, b)) / (1 - _ab(t, b)) * xt,
     "likely mistake: sqrt missing on alpha_t"),
    (ch08.check_ddim_step, lambda e, x, a_t, a_s: math.sqrt(a_s) * (x - math.sqrt(1 - a_t) * e)
     + math.sqrt(1 - a_s) * e, "likely mistake: x0_hat not divided by sqrt(alpha_bar_t)"),
    (ch08.check_ddim_step, lambda e, x, a_t, a_s: math.sqrt(a_s) * (x - math.sqrt(1 - a_t) * e)
     / math.sqrt(a_t) + math.sqrt(1 - a_t) * e, "likely mistake: the noise kept at the current level"),
    (ch08.check_ddim_step, lambda e, x, a_t, a_s: (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t),
     "likely mistake: returned x0_hat"),
    (ch08.check_alpha_bar_last, lambda s, e, T: 1 - e, "likely mistake: 1 - beta_T"),
    (ch08.check_alpha_bar_last, _ab_first_order, "likely mistake: exp(-sum of betas)"),
    (ch08.check_alpha_bar_last, lambda s, e, T: float(torch.linspace(s, e, T, dtype=torch.float64).sum()),
     "likely mistake: the sum of the betas"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
