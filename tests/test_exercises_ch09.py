"""Chapter 09's checkers accept a right answer and reject the usual wrong ones, naming the mistake; their expected
answers agree with vitlib.diffusion and vitlib.t2i. The stub, crash and wrong-type checks for every chapter are in
test_exercises.py."""

import pytest
import torch
import torch.nn.functional as F

from vitlib.diffusion import NoiseSchedule, sample
from vitlib.exercises import ch09


def cfg(eps_uncond, eps_cond, s):
    return eps_uncond + s * (eps_cond - eps_uncond)


def clip_score(image_emb, text_emb):
    return 2.5 * F.cosine_similarity(image_emb, text_emb, dim=-1).clamp(min=0)


def sdedit_start(strength, steps, T):
    return (max(1, int(steps * strength)) - 1) * (T // steps)


def signal_left(t):
    return NoiseSchedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod[t].sqrt().item()


SOLUTIONS = {ch09.check_cfg: cfg, ch09.check_clip_score: clip_score, ch09.check_sdedit_start: sdedit_start,
             ch09.check_signal_left: signal_left}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def test_the_right_answers_are_what_vitlib_computes():
    """cfg is the sampler's combination; sdedit_start is the timestep vitlib.diffusion.sample noises the image to."""
    u, c = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)

    def model(x, t, cond):
        k = len(x) // len(u)                                   # 2 on the guided doubled batch
        return torch.where(cond.view(-1, 1, 1, 1) > 0, c.repeat(k, 1, 1, 1), u.repeat(k, 1, 1, 1))

    seen = []

    def recording(x, t, cond):
        seen.append(int(t[0]))
        return model(x, t, cond)

    one = sample(model, NoiseSchedule(), (2, 1, 4, 4), steps=1, method="ddim", cond=torch.ones(2),
                 guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    eps = cfg(u, c, 3.0)
    a = NoiseSchedule().alphas_cumprod[0]
    x_T = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(one, (x_T - (1 - a).sqrt() * eps) / a.sqrt(), atol=1e-5, rtol=1e-5)
    for strength, steps in ((0.6, 20), (0.3, 10), (1.0, 20)):
        seen.clear()
        sample(recording, NoiseSchedule(), (2, 1, 4, 4), steps=steps, method="ddim", cond=torch.ones(2),
               init=torch.zeros(2, 1, 4, 4), strength=strength)
        assert seen[0] == sdedit_start(strength, steps, 1000)


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch09.check_cfg, lambda u, c, s: c + s * (u - c), "likely mistake: conditional and unconditional swapped"),
    (ch09.check_cfg, lambda u, c, s: s * c, "likely mistake: the unconditional term dropped"),
    (ch09.check_cfg, lambda u, c, s: (1 + s) * c - s * u, "likely mistake: (1 + s) eps_cond - s eps_uncond"),
    (ch09.check_cfg, lambda u, c, s: (u + c) / 2, "likely mistake: an average of the two predictions"),
    (ch09.check_clip_score, lambda v, t: 2.5 * F.cosine_similarity(v, t, dim=-1), "likely mistake: no max(., 0)"),
    (ch09.check_clip_score, lambda v, t: 2.5 * (v * t).sum(-1).clamp(min=0),
     "likely mistake: the embeddings not normalised"),
    (ch09.check_clip_score, lambda v, t: 100 * F.cosine_similarity(v, t, dim=-1).clamp(min=0),
     "likely mistake: w = 100"),
    (ch09.check_sdedit_start, lambda a, n, T: int(a * T), "likely mistake: strength * T"),
    (ch09.check_sdedit_start, lambda a, n, T: int(n * a) * (T // n), "likely mistake: off by one"),
    (ch09.check_signal_left, lambda t: NoiseSchedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod[t].item(),
     "likely mistake: alpha_bar_t without the sqrt"),
    (ch09.check_signal_left, lambda t: NoiseSchedule().alphas_cumprod[t].sqrt().item(),
     "likely mistake: the linear schedule"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
