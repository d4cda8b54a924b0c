"""Self-checking exercises: run a student's function on known cases and say precisely what differs (chapter 00).

    check(softmax, [Case(args=(torch.zeros(2),), expected=torch.full((2,), 0.5), label="uniform")])

prints `✓ softmax: all 1 cases passed` and returns True, or names each failing case with its inputs,
the expected and the received value and why they differ. A stub that still raises NotImplementedError
gets a reminder, not a traceback. Each chapter's checkers live in `vitlib.exercises.chNN`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["Case", "check", "mismatch", "short_repr"]


@dataclass
class Case:
    """One test case: call `fn(*args, **kwargs)` and expect `expected`; `label` names it in the feedback."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    expected: object = None
    label: str | None = None


def short_repr(x, limit: int = 80) -> str:
    """A one-line repr: small tensors with their values, big ones by shape and dtype; long text cut."""
    if isinstance(x, torch.Tensor) and x.numel() > 8:
        return f"tensor(shape={tuple(x.shape)}, dtype={str(x.dtype).removeprefix('torch.')})"
    if isinstance(x, np.ndarray) and x.size > 8:
        return f"array(shape={x.shape}, dtype={x.dtype})"
    text = " ".join(repr(x).split())  # tensors print over several lines
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _array_mismatch(got, expected, rtol: float, atol: float) -> str | None:
    """Compare two tensors (numpy arrays arrive converted): shape first, then values."""
    if tuple(got.shape) != tuple(expected.shape):
        return f"shape mismatch: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if expected.is_floating_point() or got.is_floating_point():
        g, e = got.detach().cpu().double(), expected.detach().cpu().double()
        if torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            return None
        diff = (g - e).abs().nan_to_num(nan=math.inf)
        where = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape))
        return f"values differ: largest difference {diff.max().item():.3g} at index {where}"
    if torch.equal(got.cpu(), expected.cpu()):
        return None
    where = tuple(int(i) for i in (got.cpu() != expected.cpu()).nonzero()[0])
    return f"values differ: first difference at index {where}"


def mismatch(got, expected, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """Why `got` is not `expected` (None when they agree).

    Tensors and numpy arrays: same shape and allclose; floats: within tolerance;
    tuples, lists and dicts: item by item; anything else: ==.
    """
    if expected is not None and got is None:
        return "got None: did the function forget to `return` its result?"
    if isinstance(expected, np.ndarray):  # compare arrays as tensors; numpy scalars are numbers below
        expected = torch.tensor(expected)
        got = torch.tensor(got) if isinstance(got, np.ndarray) else got
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a tensor of shape {tuple(expected.shape)}, got a {type(got).__name__}"
        return _array_mismatch(got, expected, rtol, atol)
    if isinstance(expected, float) and not isinstance(got, bool):
        try:  # a 0-d tensor or numpy scalar is as good as a float here
            value = float(got)
        except (TypeError, ValueError):
            return f"expected a number, got a {type(got).__name__}"
        if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol) or (math.isnan(value) and math.isnan(expected)):
            return None
        return f"numbers differ by {abs(value - expected):.3g}"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"expected a {type(expected).__name__} of {len(expected)} items, got a {type(got).__name__}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            if (why := mismatch(g, e, rtol, atol)) is not None:
                return f"item [{i}]: {why}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got a {type(got).__name__}"
        if set(got) != set(expected):
            return f"keys differ: missing {sorted(map(str, set(expected) - set(got)))}, " \
                   f"unexpected {sorted(map(str, set(got) - set(expected)))}"
        for k in expected:
            if (why := mismatch(got[k], expected[k], rtol, atol)) is not None:
                return f"key {k!r}: {why}"
        return None
    try:
        return None if bool(got == expected) else "values differ"
    except (RuntimeError, ValueError, TypeError):  # e.g. a tensor compared with a number
        return f"cannot compare a {type(got).__name__} with the expected {type(expected).__name__}"


def _as_case(item, i: int) -> Case:
    if isinstance(item, Case):
        return item
    if isinstance(item, tuple) and len(item) == 2:  # (args, expected); a lone non-tuple argument is wrapped
        args, expected = item
        return Case(args=args if isinstance(args, tuple) else (args,), expected=expected)
    raise TypeError(f"case {i} must be a Case or an (args_tuple, expected) pair, got {short_repr(item)}")


def _call_text(name: str, case: Case) -> str:
    parts = [short_repr(a, 40) for a in case.args] + [f"{k}={short_repr(v, 40)}" for k, v in case.kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _run_compare(compare: Callable, got, expected) -> str | None:
    """A custom compare returns a bool, or raises AssertionError (e.g. torch.testing.assert_close)."""
    try:
        ok = compare(got, expected)
    except AssertionError as err:
        return " ".join(str(err).split()) or "custom comparison failed"
    return None if ok is None or bool(ok) else "custom comparison failed"


def check(
    fn: Callable,
    cases: Iterable[Case | tuple],
    *,
    name: str | None = None,
    compare: Callable | None = None,
    show: int = 5,
) -> bool:
    """Run `fn` on every case, print feedback (details of the first `show` failures) and return True if all pass.

    `compare(got, expected)` replaces the default `mismatch`-based equality; it returns a bool or
    raises AssertionError with a message.
    """
    if not callable(fn):
        raise TypeError(f"check expects the function to test, got {short_repr(fn)}")
    cases = [_as_case(c, i) for i, c in enumerate(cases, start=1)]
    if not cases:
        raise ValueError("check needs at least one case, got none")
    name = name or getattr(fn, "__name__", "your function")
    failures: list[str] = []
    for i, case in enumerate(cases, start=1):
        header = f"case {i}" + (f" ({case.label})" if case.label else "") + f": {_call_text(name, case)}"
        try:
            args, kwargs = copy.deepcopy((case.args, case.kwargs))  # a function that edits its inputs spoils no case
        except Exception:  # some objects (open files, some modules) cannot be copied; use them as they are
            args, kwargs = case.args, case.kwargs
        try:
            got = fn(*args, **kwargs)
        except NotImplementedError:
            print(f"✗ {name}: not implemented yet — replace its `raise NotImplementedError`")
            return False
        except Exception as err:
            failures.append(f"{header}\n    raised {type(err).__name__}: {err}")
            continue
        why = mismatch(got, case.expected) if compare is None else _run_compare(compare, got, case.expected)
        if why is not None:
            failures.append(f"{header}\n    expected: {short_repr(case.expected)}\n"
                            f"    got:      {short_repr(got)}\n    {why}")
    if not failures:
        print(f"✓ {name}: all {len(cases)} cases passed")
        return True
    print(f"✗ {name}: {len(failures)} of {len(cases)} cases failed")
    for text in failures[:show]:
        print("  " + text)
    if len(failures) > show:
        print(f"  ... and {len(failures) - show} more failing cases")
    return False
