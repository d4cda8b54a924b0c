"""Chapter 12's checkers accept a right answer and reject the usual wrong ones, naming the mistake; the right answers
agree with vitlib.agent's expert on an empty grid and with vitlib.policy_gradient.returns_to_go. The stub, crash and
wrong-type checks for every chapter are in test_exercises.py."""

import re

import pytest
import torch

from vitlib import agent as A
from vitlib.exercises import ch12
from vitlib.policy_gradient import returns_to_go as library_returns_to_go


def next_action(agent, obj, target, holding):
    goal = target if holding else obj
    if agent == goal:
        return 5 if holding else 4
    (r, c), (gr, gc) = agent, goal
    return (3 if gc > c else 2) if c != gc else (1 if gr > r else 0)   # columns first: as short, another way


def returns_to_go(rewards, alive):
    out, running = torch.zeros_like(rewards), torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        running = running + rewards[:, t] * alive[:, t]
        out[:, t] = running
    return out


def expected_cost(eps, T):
    # P(first error at t) = (1 - eps)^(t-1) eps; then T - t + 1 erring steps; by the complement, in closed form
    return T - (1 - eps) * (1 - (1 - eps) ** T) / eps if eps > 0 else 0.0


SOLUTIONS = {ch12.check_next_action: next_action, ch12.check_returns_to_go: returns_to_go,
             ch12.check_compounding: expected_cost}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def distance(a, b):
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def test_next_action_is_one_of_the_experts_on_an_empty_grid():
    env = A.ShapesGridEnv()
    env.reset(seed=0)
    for agent in [(r, c) for r in range(3) for c in range(3)]:
        for obj, target in (((2, 2), (0, 0)), ((0, 1), (2, 1)), ((1, 1), (1, 0))):
            for holding in (False, True):
                moved = A.Obj("circle", "red", "small", obj)
                env.objects = {} if holding else {obj: moved}
                env.agent, env.held = agent, (moved if holding else None)
                env.task = A.Task("red", "circle", place=target)
                if holding and agent == target or not holding and agent == obj:
                    assert next_action(agent, obj, target, holding) == A.expert_action(env)
                else:   # both move one step closer
                    step = A.MOVES[next_action(agent, obj, target, holding)]
                    goal = target if holding else obj
                    expert = A.MOVES[A.expert_action(env)]
                    for move in (step, expert):
                        assert distance((agent[0] + move[0], agent[1] + move[1]), goal) == distance(agent, goal) - 1


def test_returns_to_go_is_the_librarys():
    g = torch.Generator().manual_seed(0)
    rewards, alive = torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g).cumsum(1) < 2.5
    assert torch.allclose(returns_to_go(rewards, alive), library_returns_to_go(rewards, alive), atol=1e-6)


def test_expected_cost_agrees_with_a_simulation():
    g = torch.Generator().manual_seed(0)
    eps, T, n = 0.1, 8, 200_000
    hit = torch.rand(n, T, generator=g) < eps                                       # would step t err, alone?
    first = torch.where(hit.any(1), hit.float().argmax(1), torch.full((n,), T))      # 0-based; T: never
    cost = (T - first).float().mean().item()                                         # that step and all after
    assert abs(cost - expected_cost(eps, T)) < 0.02


def plain_cumsum(rewards, alive):
    return (rewards * alive).cumsum(1)


WRONG = [
    (ch12.check_next_action, lambda a, o, t, h: next_action(a, t, t, h), "walking to the target before"),
    (ch12.check_next_action, lambda a, o, t, h: next_action(a, o, o, h), "carrying the object back"),
    (ch12.check_next_action, lambda a, o, t, h: next_action(a[::-1], o[::-1], t[::-1], h), "rows and columns"),
    (ch12.check_next_action, lambda a, o, t, h: next_action((2 - a[0], a[1]), (2 - o[0], o[1]), (2 - t[0], t[1]),
                                                            h), "up and down swapped"),
    (ch12.check_returns_to_go, plain_cumsum, "a plain cumsum"),
    (ch12.check_returns_to_go, lambda r, m: (r * m).sum(1, keepdim=True).expand_as(r), "the whole episode's return"),
    (ch12.check_returns_to_go, lambda r, m: r.flip(1).cumsum(1).flip(1), "after the episode ended"),
    (ch12.check_returns_to_go, lambda r, m: returns_to_go(r, m) - r * m, "without r_t itself"),
    (ch12.check_compounding, lambda eps, T: eps * T, "independent"),
    (ch12.check_compounding, lambda eps, T: eps * T * T, "the order of the bound"),
    (ch12.check_compounding, lambda eps, T: expected_cost(eps, T) - (1 - (1 - eps) ** T), "T - t erring steps"),
]


@pytest.mark.parametrize("checker, wrong, mistake", WRONG, ids=[f"{c.__name__}-{m}" for c, _, m in WRONG])
def test_checkers_name_the_mistake(checker, wrong, mistake, capsys):
    assert not checker(wrong)
    out = capsys.readouterr().out
    assert re.search(rf"likely mistake: [^\n]*{re.escape(mistake)}", out), out


@pytest.mark.parametrize("checker", SOLUTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [None, 3, "next_action"], ids=["None", "int", "str"])
def test_checkers_want_a_function(checker, bad):
    with pytest.raises(TypeError, match="check expects the function to test"):
        checker(bad)
