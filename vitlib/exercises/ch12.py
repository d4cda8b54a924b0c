"""Checkers for chapter 12's exercises: the expert's next action on an empty grid, REINFORCE's returns to go, and
the expected cost of compounding errors. Each compares your answer with the chapter's (``vitlib.agent``'s expert,
``vitlib.policy_gradient.returns_to_go``) and names the usual mistakes.

    a*(s): walk to the object (pick), then to the target (drop), by a shortest path
    G_et = sum_{k >= t} r_ek over the steps where episode e was alive
    E[erring steps] = sum_{t=1..T} (1 - eps)^(t - 1) eps (T - t + 1)      one error, then every later step errs
"""

from __future__ import annotations

import functools

import torch

from ..policy_gradient import returns_to_go as _returns_to_go
from . import Case, check, function_name, short_repr

__all__ = ["check_next_action", "check_returns_to_go", "check_compounding"]

MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}


def _shortest(agent, goal, at_goal: int) -> set[int]:
    """Every first action of a shortest way from ``agent`` to ``goal`` on an empty grid, then ``at_goal``."""
    if agent == goal:
        return {at_goal}
    (r, c), (gr, gc) = agent, goal
    return {a for a, (dr, dc) in MOVES.items()
            if abs(gr - (r + dr)) + abs(gc - (c + dc)) < abs(gr - r) + abs(gc - c)}


def _optimal(agent, obj, target, holding) -> set[int]:
    return _shortest(agent, target, 5) if holding else _shortest(agent, obj, 4)


def _callable(fn) -> None:
    """A checker that wraps the student's function first checks it is one, as ``check`` would."""
    if not callable(fn):
        raise TypeError(f"check expects the function to test, got {short_repr(fn)}")


def _first(actions: set[int]) -> int:
    return min(actions)


def _transpose(cell):
    return cell[1], cell[0]


def _upside_down(cell):
    return 2 - cell[0], cell[1]


def check_next_action(next_action) -> bool:
    """``next_action(agent, obj, target, holding)``: cells (row, col) of the agent, of the object to move and of
    its target on the empty 3x3 grid, and whether the agent carries the object -> the index of a first action of
    a shortest way to finish (0 up, 1 down, 2 left, 3 right, 4 pick, 5 drop). Any of equally short moves counts."""
    _callable(next_action)
    layouts = [((0, 0), (2, 2), (1, 1), False, "walk to the object first"),
               ((2, 2), (2, 2), (0, 0), False, "on the object: pick it up"),
               ((2, 2), (2, 2), (0, 0), True, "holding it: carry it to the target"),
               ((0, 0), (2, 1), (0, 0), True, "holding it at its target: drop"),
               ((1, 2), (1, 0), (0, 1), False, "the object to the left"),
               ((2, 1), (0, 1), (2, 0), False, "the object above (row 0 is the top)"),
               ((0, 1), (0, 1), (2, 1), True, "the target below"),
               ((1, 1), (1, 1), (1, 2), True, "the target to the right"),
               ((2, 0), (0, 2), (1, 1), False, "the object up and to the right"),
               ((0, 2), (0, 2), (2, 0), True, "the target down and to the left")]

    def wrong(agent, obj, target, holding, kind):
        if kind == "target first":
            return _first(_shortest(agent, target, 5))
        if kind == "drop at the object":
            return _first(_shortest(agent, obj, 5 if holding else 4))
        flip = _transpose if kind == "rows and columns swapped" else _upside_down
        return _first(_optimal(flip(agent), flip(obj), flip(target), holding))

    mistakes = {"target first": "walking to the target before the object is picked up",
                "drop at the object": "carrying the object back to where it was, not to its target",
                "rows and columns swapped": "rows and columns swapped: a cell is (row, col)",
                "up and down swapped": "up and down swapped: row 0 is the top, so 'up' lowers the row"}
    cases = []
    for agent, obj, target, holding, label in layouts:
        best = _optimal(agent, obj, target, holding)
        answers = {text: wrong(agent, obj, target, holding, kind) for kind, text in mistakes.items()}
        cases.append(Case(args=(agent, obj, target, holding), expected=_first(best), label=label,
                          mistakes={text: a for text, a in answers.items() if a not in best}))

    @functools.wraps(next_action)   # the student's function, for the stub reminder
    def scored(agent, obj, target, holding):
        got = next_action(agent, obj, target, holding)
        best = _optimal(agent, obj, target, holding)
        return _first(best) if isinstance(got, int) and not isinstance(got, bool) and got in best else got

    return check(scored, cases, name=function_name(next_action, "next_action"))


def check_returns_to_go(returns_to_go) -> bool:
    """``returns_to_go(rewards, alive)``: (E, T) float rewards and (E, T) bool alive (False after an episode
    ended) -> G (E, T), G_et = sum_{k >= t} r_ek over the alive steps, as ``vitlib.policy_gradient``'s."""
    g = torch.Generator().manual_seed(120)
    examples = [(torch.tensor([[-0.01, -0.01, 1.0]]), torch.tensor([[True, True, True]]), "one episode, done"),
                (torch.tensor([[-0.01, 1.0, 0.0], [-0.01, -0.01, -0.01]]),
                 torch.tensor([[True, True, False], [True, True, True]]), "one ends early, one runs out"),
                (torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g).cumsum(1) < 2.0, "random")]
    cases = []
    for rewards, alive, label in examples:
        expected = _returns_to_go(rewards, alive)
        masked = rewards * alive
        cases.append(Case(args=(rewards.clone(), alive.clone()), expected=expected, label=label, mistakes={
            "a plain cumsum: that adds the rewards before t, G_t adds those from t on": masked.cumsum(1),
            "the whole episode's return at every step: an action cannot change the rewards before it":
                masked.sum(1, keepdim=True).expand_as(masked).clone(),
            "rewards after the episode ended counted: multiply by alive first": rewards.flip(1).cumsum(1).flip(1),
            "the return after t, without r_t itself": masked.flip(1).cumsum(1).flip(1) - masked}))
    return check(returns_to_go, cases, name=function_name(returns_to_go, "returns_to_go"))


def _expected_cost(eps: float, T: int) -> float:
    return sum((1 - eps) ** (t - 1) * eps * (T - t + 1) for t in range(1, T + 1))


def check_compounding(expected_cost) -> bool:
    """``expected_cost(eps, T)``: a policy errs with probability eps at each step until its first error, and at
    every step after it -> the expected number of erring steps in T steps (a float)."""
    _callable(expected_cost)
    cases = []
    for eps, T in ((0.02, 10), (0.1, 5), (0.5, 3), (0.0, 7), (1.0, 4), (0.01, 50)):
        expected = _expected_cost(eps, T)
        mistakes = {"eps T: that treats the errors as independent, but one error leads to the next": eps * T,
                    "eps T^2: the order of the bound, not the expectation": eps * T * T,
                    "T - t erring steps after a first error at t: the step of the error itself errs too":
                        sum((1 - eps) ** (t - 1) * eps * (T - t) for t in range(1, T + 1)),
                    "the first error's probability taken as eps at every step, without (1 - eps)^(t - 1)":
                        sum(eps * (T - t + 1) for t in range(1, T + 1))}
        cases.append(Case(args=(eps, T), expected=expected, label=f"eps={eps}, T={T}",
                          mistakes={k: v for k, v in mistakes.items() if abs(v - expected) > 1e-9}))

    @functools.wraps(expected_cost)
    def rounded(eps, T):
        got = expected_cost(eps, T)
        ok = isinstance(got, (int, float)) and not isinstance(got, bool)
        return round(float(got), 9) if ok else got

    for case in cases:
        case.expected = round(case.expected, 9)
        case.mistakes = {k: round(v, 9) for k, v in case.mistakes.items()}
    return check(rounded, cases, name=function_name(expected_cost, "expected_cost"))
