"""Tests of vitlib.exercises.check: the feedback a student sees for right, wrong, unfinished and crashing code;
and, over every chapter's checkers at once, that a stub, a crash, a lying object or a right answer of the wrong
type gets feedback that says so."""

import functools
import importlib
import inspect
import pkgutil
import re

import numpy as np
import pytest
import torch

import vitlib.exercises
from vitlib.exercises import Case, check, function_name, mismatch

CASES = [
    Case(args=(torch.zeros(2),), expected=torch.full((2,), 0.5), label="uniform logits"),
    Case(args=(torch.tensor([0.0, 100.0]),), expected=torch.tensor([0.0, 1.0]), label="large logit"),
]


def reminder(name: str) -> str:
    """What a stub gets, word for word (the chapters' stored outputs show it)."""
    return f"✗ {name}: not implemented yet — replace its `raise NotImplementedError`\n"


def softmax(x):
    return torch.softmax(x, dim=-1)


def test_passing_function(capsys):
    assert check(softmax, CASES) is True
    assert capsys.readouterr().out.strip() == "✓ softmax: all 2 cases passed"


def test_wrong_function_shows_case_expected_and_got(capsys):
    def softmax(x):
        return x.exp()  # forgot to normalise

    assert check(softmax, CASES) is False
    out = capsys.readouterr().out
    assert "2 of 2 cases failed" in out and "case 1 (uniform logits): softmax(tensor([0., 0.]))" in out
    assert "expected: tensor([0.5000, 0.5000])" in out and "got:      tensor([1., 1.])" in out
    assert "largest difference 0.5 at index (0,)" in out


def test_not_implemented_is_a_reminder(capsys):
    def attention(q, k, v):
        raise NotImplementedError

    assert check(attention, [((1, 2, 3), 0)]) is False
    out = capsys.readouterr().out
    assert out == reminder("attention")


def test_exception_is_reported_with_its_message(capsys):
    def f(x):
        raise KeyError("no such token")

    assert check(f, [((1,), 1), (2, 2)]) is False
    out = capsys.readouterr().out
    assert "raised KeyError: 'no such token'" in out and "case 2: f(2)" in out


def test_tensor_shape_mismatch_is_named(capsys):
    assert check(lambda x: x.T, [((torch.zeros(2, 3),), torch.zeros(2, 3))], name="transpose") is False
    assert "shape mismatch: expected shape (2, 3), got (3, 2)" in capsys.readouterr().out


def test_show_limits_details(capsys):
    assert check(lambda x: x + 1, [((i,), i) for i in range(4)], name="identity", show=1) is False
    out = capsys.readouterr().out
    assert out.count("expected:") == 1 and "and 3 more failing cases" in out


def test_inputs_are_copied_and_kwargs_passed(capsys):
    x = torch.ones(3)

    def scale_(x, by):
        return x.mul_(by)  # edits its input in place

    assert check(scale_, [Case(args=(x,), kwargs={"by": 2.0}, expected=torch.full((3,), 2.0))] * 2)
    assert torch.equal(x, torch.ones(3))


def test_custom_compare_and_none_result(capsys):
    assert check(lambda x: x, [((1.0,), 1.5)], compare=lambda g, e: abs(g - e) < 1) is True
    assert check(lambda x: x * 1.01, [((torch.ones(2),), torch.ones(2))], compare=torch.testing.assert_close) is False
    assert "Tensor-likes are not close" in capsys.readouterr().out
    assert check(lambda x: None, [((1,), 1)], name="f") is False
    assert "forget to `return`" in capsys.readouterr().out


def test_mismatch_rules():
    assert mismatch(0.1 + 0.2, 0.3) is None and mismatch(torch.tensor(0.5), 0.5) is None
    assert mismatch(np.arange(3), np.arange(3)) is None
    assert "values differ" in mismatch(np.arange(3), np.array([0, 1, 3]))
    assert mismatch((torch.ones(1), "a"), (torch.ones(1), "b")) == "item [1]: values differ"
    assert "keys differ" in mismatch({"a": 1}, {"b": 1})
    assert mismatch([1, 2], torch.tensor([1, 2])) == \
        "expected a torch.Tensor of shape (2,) and dtype torch.int64, got a list"
    assert mismatch(torch.ones(2, dtype=torch.float64), torch.ones(2)) == \
        "dtype mismatch: expected torch.float32, got torch.float64"
    assert mismatch(torch.ones(3).numpy(), torch.ones(3)).endswith("got a numpy.ndarray")
    assert mismatch(torch.ones(2, 1, dtype=torch.int32), torch.ones(2, dtype=torch.int64)) == \
        "shape mismatch: expected shape (2,), got (2, 1); dtype mismatch: expected torch.int64, got torch.int32"


def test_mismatch_checks_the_type_before_the_value():
    assert mismatch(True, 1) == "expected an int, got a bool"
    assert mismatch(np.int64(3), 3) is None and mismatch(3, np.int64(3)) is None
    assert mismatch(3.0, 3) == "expected an int, got a float (use // for a whole number)"
    assert mismatch(torch.tensor(3), 3) == "expected an int, got a torch.Tensor (use .item() for a Python number)"
    assert mismatch(True, 1.0) == "expected a float, got a bool (True)"
    assert mismatch("0.5", 0.5) == "expected a float, got a str"
    assert mismatch(torch.tensor(0.5, dtype=torch.float64), 0.5) is None and mismatch(np.float32(0.5), 0.5) is None
    assert mismatch(torch.ones(3), 1.0).startswith("expected a float (a 0-d tensor will do), got a torch.Tensor of")
    assert mismatch(1, True) == "expected a bool, got an int"
    assert mismatch(0, None) == "expected None, got an int"
    assert mismatch(("a",), ["a"]) is None  # a tuple for a list is fine: the items are what counts
    assert mismatch({"a": 1}, {"a": True}) == "key 'a': expected a bool, got an int"


class Liar:
    """An answer that claims to equal anything."""

    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class LyingInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class LyingStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def test_mismatch_never_trusts_the_answers_own_eq():
    for expected in (3, 2.5, "background", True, (1, 2), [1, 2], {"a": 1}, torch.ones(2), np.ones(2), range(3)):
        assert mismatch(Liar(), expected).endswith("got a Liar"), expected
        assert mismatch([Liar()], [expected]).endswith("got a Liar"), expected
    assert mismatch(LyingInt(4), 3) == "values differ by 1"
    assert mismatch(LyingStr("red"), "blue") == "values differ"
    assert check(lambda x: Liar(), [((1,), 2)], name="f") is False


def test_a_comparison_that_fails_on_a_strange_answer_is_feedback_not_a_traceback(capsys):
    def fussy(got, expected):
        return torch.allclose(got, expected)  # raises for a float64 answer against a float32 one

    assert check(lambda x: x.double(), [((torch.ones(2),), torch.zeros(2))], name="f", compare=fussy) is False
    out = capsys.readouterr().out
    assert "case 1: f(tensor([1., 1.]))" in out and "could not be compared with the expected torch.Tensor" in out


class Unprintable:
    def __repr__(self):
        raise ValueError("no repr")


def test_an_answer_whose_repr_raises_is_still_reported(capsys):
    assert check(lambda x: Unprintable(), [((1,), 2)], name="f") is False
    assert "got:      <Unprintable whose repr raised ValueError>" in capsys.readouterr().out


def test_named_mistakes_and_error_hints(capsys):
    case = Case(args=(torch.tensor([1.0, 3.0]),), expected=torch.tensor([0.5, 1.5]),
                mistakes={"forgot to halve": torch.tensor([1.0, 3.0]), "halved twice": torch.tensor([0.25, 0.75])})
    assert check(lambda x: x / 4, [case], name="half") is False
    out = capsys.readouterr().out
    assert out.endswith("    likely mistake: halved twice\n")
    assert check(lambda x: x @ x[None], [case], name="half",
                 explain=vitlib.exercises.hint_on_error({"cannot be multiplied": "x is a vector: no @"})) is False
    out = capsys.readouterr().out
    assert "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied" in out
    assert out.endswith("    hint: x is a vector: no @\n")


def test_function_name_sees_through_wrappers():
    def merge(ids, pair, new_id):
        return ids

    @functools.wraps(merge)
    def wrapper(*args):
        return merge(*args)

    assert function_name(merge, "x") == "merge" and function_name(wrapper, "x") == "merge"
    assert function_name(functools.partial(merge, new_id=3), "x") == "merge"
    assert function_name(lambda ids: ids, "merge_fn") == "merge_fn" and function_name(abs) == "abs"
    assert function_name(object()) == "your function"


LIBRARY = {}  # a library function raising NotImplementedError from its own file (an op a device lacks)
exec(compile("def missing_op(x):\n    raise NotImplementedError(\"aten::op is not implemented for the MPS device\")\n",
             "some_library.py", "exec"), LIBRARY)


def test_not_implemented_inside_a_library_is_an_error_not_a_stub(capsys):
    def uses_op(x):
        return LIBRARY["missing_op"](x)

    def helper_stub(x):
        raise NotImplementedError("your code here")

    def calls_helper(x):
        return helper_stub(x)

    assert check(uses_op, [((1,), 1)]) is False
    assert "raised NotImplementedError: aten::op is not implemented for the MPS device" in capsys.readouterr().out
    assert check(lambda x: torch.nn.Module()(x), [((1,), 1)], name="f") is False  # a module without a forward
    assert 'raised NotImplementedError: Module [Module] is missing the required "forward" function' in \
        capsys.readouterr().out
    assert check(calls_helper, [((1,), 1)]) is False  # the student's own helper, in the student's own file: a stub
    assert capsys.readouterr().out == reminder("calls_helper")


def test_bad_arguments():
    with pytest.raises(TypeError, match="function"):
        check(3, [((1,), 1)])
    with pytest.raises(ValueError, match="at least one case"):
        check(softmax, [])
    with pytest.raises(TypeError, match="case 1"):
        check(softmax, [42])


# Every checker of every chapter (vitlib.exercises.chNN.check_*), and its right answer from the chapter's tests.
CHAPTERS = sorted(m.name for m in pkgutil.iter_modules(vitlib.exercises.__path__) if re.fullmatch(r"ch\d\d", m.name))
CHECKERS = [f for ch in CHAPTERS for name, f in inspect.getmembers(importlib.import_module(f"vitlib.exercises.{ch}"),
                                                                     inspect.isfunction)
            if name.startswith("check_") and f.__module__ == f"vitlib.exercises.{ch}"]
SOLUTIONS = {k: v for ch in CHAPTERS for k, v in importlib.import_module(f"test_exercises_{ch}").SOLUTIONS.items()}
checker_id = lambda f: f"{f.__module__.rsplit('.', 1)[1]}.{f.__name__}"  # noqa: E731


def test_every_checker_is_found_and_has_a_solution():
    assert len(CHAPTERS) == 14 and len(CHECKERS) >= 51
    assert sorted(map(checker_id, CHECKERS)) == sorted(map(checker_id, SOLUTIONS))


@pytest.mark.parametrize("checker", CHECKERS, ids=checker_id)
def test_a_stub_gets_the_reminder_that_names_it(checker, capsys):
    def unfinished(*args, **kwargs):
        raise NotImplementedError

    assert checker(unfinished) is False
    assert capsys.readouterr().out == reminder("unfinished")


@pytest.mark.parametrize("checker", CHECKERS, ids=checker_id)
def test_a_crash_gets_the_case_the_call_and_the_error(checker, capsys):
    def crashes(*args, **kwargs):
        raise RuntimeError("shapes do not fit")

    assert checker(crashes) is False
    out = capsys.readouterr().out
    assert re.match(r"✗ crashes: (\d+) of \1 cases failed\n  case 1\b.*: crashes\(", out), out
    assert "\n    raised RuntimeError: shapes do not fit" in out


@pytest.mark.parametrize("checker", CHECKERS, ids=checker_id)
def test_a_liar_fails_and_is_told_the_type_expected(checker, capsys):
    assert checker(lambda *args, **kwargs: Liar()) is False
    out = capsys.readouterr().out
    assert re.search(r"expected an? (torch\.Tensor|tuple|list|int|float|str)\b[^\n]*, got a Liar\b", out), out


def _retype(result, how: str, seen: list):
    """result with every tensor that is not a scalar made numpy or given another dtype; each change in seen."""
    if isinstance(result, torch.Tensor) and result.dim() > 0:
        if how == "numpy":
            seen.append(("torch.Tensor", "numpy.ndarray"))
            return result.numpy()
        other = {torch.float32: torch.float64, torch.int64: torch.int32, torch.bool: torch.uint8}[result.dtype]
        seen.append((str(result.dtype), str(other)))
        return result.to(other)
    if isinstance(result, (tuple, list)):
        return type(result)(_retype(r, how, seen) for r in result)
    return result


@pytest.mark.parametrize("how", ["numpy", "dtype"])
@pytest.mark.parametrize("checker", CHECKERS, ids=checker_id)
def test_a_right_answer_of_the_wrong_type_fails(checker, how, capsys):
    solution, seen = SOLUTIONS[checker], []

    @functools.wraps(solution)
    def retyped(*args, **kwargs):
        return _retype(solution(*args, **kwargs), how, seen)

    passed, out = checker(retyped), capsys.readouterr().out
    if not seen:  # answers without tensors (ints, floats, strings, lists of ids) stay right
        assert passed, out
        return
    assert not passed, out
    expected, got = seen[0]
    assert re.search(rf"expected [^\n]*{re.escape(expected)}[^\n]*, got [^\n]*{re.escape(got)}", out), out
