"""Self-checking exercises: run a student's function on known cases and say precisely what differs (chapter 00).

    check(softmax, [Case(args=(torch.zeros(2),), expected=torch.full((2,), 0.5), label="uniform")])

prints `✓ softmax: all 1 cases passed` and returns True, or names each failing case with its inputs,
the expected and the received value and why they differ. A stub that still raises NotImplementedError
gets a reminder, not a traceback; a function that raises gets the case, the call and the error (and a hint
when the checker recognises the mistake). A case may list the answers of common mistakes
(`Case(mistakes={"forgot the 1/sqrt(d_k)": ...})`) so that feedback names the mistake, not only the difference.
Each chapter's checkers live in `vitlib.exercises.chNN`.

Comparisons check the type before the value and never ask the student's object whether it is equal
(`vitlib.exercises.compare`).
"""

from __future__ import annotations

import copy
import dis
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .compare import kind, mismatch, short_repr, type_name

__all__ = ["Case", "check", "function_name", "graded", "hint_on_error", "kind", "mismatch", "short_repr",
           "type_name"]


@dataclass
class Case:
    """One test case: call `fn(*args, **kwargs)` and expect `expected`; `label` names it in the feedback.

    `mistakes` maps a description of a common mistake to the answer that mistake gives on this case;
    a failing answer equal to one of them is told which mistake it looks like.
    """

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    expected: object = None
    label: str | None = None
    mistakes: dict = field(default_factory=dict)


def function_name(fn, default: str = "your function") -> str:
    """The name a student gave their function (through functools.wraps wrappers and partials); `default` for a
    lambda or a nameless callable."""
    fn = _unwrap(fn)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else default


def _unwrap(fn):
    for _ in range(20):  # a chain of wrappers, never a cycle
        inner = fn.func if isinstance(fn, functools.partial) else getattr(fn, "__wrapped__", None)
        if inner is None:
            return fn
        fn = inner
    return fn


def hint_on_error(hints: dict[str, str]) -> Callable[[Exception], str | None]:
    """An `explain` for `check`: the hint whose key appears in the error's message (the first that does)."""
    def explain(err: Exception) -> str | None:
        text = str(err)
        return next((hint for key, hint in hints.items() if key in text), None)
    return explain


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


def _differs(got, expected, compare: Callable | None) -> str | None:
    """Why got is not expected; a comparison that itself fails on a strange answer says so instead of raising."""
    try:
        return mismatch(got, expected) if compare is None else _run_compare(compare, got, expected)
    except Exception as err:
        return (f"could not be compared with the expected {type_name(expected)} "
                f"({type(err).__name__}: {' '.join(str(err).split())})")


def _named_mistake(got, case: Case, compare: Callable | None) -> str | None:
    for what, wrong in case.mistakes.items():
        try:
            if (mismatch(got, wrong) if compare is None else _run_compare(compare, got, wrong)) is None:
                return what
        except Exception:  # this answer is not that mistake
            continue
    return None


def _is_stub(err: NotImplementedError, fn) -> bool:
    """Did the student's own code raise it (a stub), rather than a library inside it (a module without a forward,
    an op a device lacks)? A stub's error comes from a `raise` statement in the student's file."""
    code = getattr(_unwrap(fn), "__code__", None)
    tb = err.__traceback__
    if code is None or tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame_code = tb.tb_frame.f_code
    if frame_code.co_filename != code.co_filename:
        return False
    return 0 <= tb.tb_lasti < len(frame_code.co_code) and frame_code.co_code[tb.tb_lasti] == dis.opmap["RAISE_VARARGS"]


def check(
    fn: Callable,
    cases: Iterable[Case | tuple],
    *,
    name: str | None = None,
    compare: Callable | None = None,
    explain: Callable[[Exception], str | None] | None = None,
    show: int = 5,
) -> bool:
    """Run `fn` on every case, print feedback (details of the first `show` failures) and return True if all pass.

    `name` names the function in the feedback (by default its own name, see `function_name`).
    `compare(got, expected)` replaces the default `mismatch`-based equality; it returns a bool or
    raises AssertionError with a message. `explain(error)` returns a hint for an exception the
    checker recognises (e.g. a shape error from concatenating along the wrong dimension), or None.
    """
    if not callable(fn):
        raise TypeError(f"check expects the function to test, got {short_repr(fn)}")
    cases = [_as_case(c, i) for i, c in enumerate(cases, start=1)]
    if not cases:
        raise ValueError("check needs at least one case, got none")
    name = name or function_name(fn)
    failures: list[str] = []
    for i, case in enumerate(cases, start=1):
        header = f"case {i}" + (f" ({case.label})" if case.label else "") + f": {_call_text(name, case)}"
        try:
            args, kwargs = copy.deepcopy((case.args, case.kwargs))  # a function that edits its inputs spoils no case
        except Exception:  # some objects (open files, some modules) cannot be copied; use them as they are
            args, kwargs = case.args, case.kwargs
        try:
            got = fn(*args, **kwargs)
        except Exception as err:
            if isinstance(err, NotImplementedError) and _is_stub(err, fn):
                print(f"✗ {name}: not implemented yet — replace its `raise NotImplementedError`")
                return False
            text = f"{header}\n    raised {type(err).__name__}: {' '.join(str(err).split())}"
            try:
                hint = explain(err) if explain is not None else None
            except Exception:
                hint = None
            failures.append(text + (f"\n    hint: {hint}" if hint else ""))
            continue
        why = _differs(got, case.expected, compare)
        if why is not None:
            text = f"{header}\n    expected: {short_repr(case.expected)}\n    got:      {short_repr(got)}\n    {why}"
            if (what := _named_mistake(got, case, compare)) is not None:
                text += f"\n    likely mistake: {what}"
            failures.append(text)
    if not failures:
        print(f"✓ {name}: all {len(cases)} cases passed")
        return True
    print(f"✗ {name}: {len(failures)} of {len(cases)} cases failed")
    for text in failures[:show]:
        print("  " + text)
    if len(failures) > show:
        print(f"  ... and {len(failures) - show} more failing cases")
    return False


def graded(*passed) -> None:
    """An autograded test cell's verdict on the checkers' results (``vitlib.classroom``). Under nbgrader's autograder
    (which sets NBGRADER_EXECUTION) a check that did not pass raises AssertionError, so the cell scores 0 and the
    checker's feedback printed above goes into the student's feedback; run by hand it only says so, and the
    notebook runs on."""
    if not passed or not all(isinstance(p, bool) for p in passed):
        raise TypeError(f"graded expects the True/False results of checkers, got {short_repr(passed)}")
    if all(passed):
        print("✓ autograded: passed")
    elif os.environ.get("NBGRADER_EXECUTION"):
        raise AssertionError("the checker above did not pass: see its feedback")
    else:
        print("✗ autograded: not passed yet; nbgrader would give this cell 0 points")
