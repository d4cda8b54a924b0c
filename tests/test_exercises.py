"""Tests of vitlib.exercises.check: the feedback a student sees for right, wrong, unfinished and crashing code."""

import numpy as np
import pytest
import torch

from vitlib.exercises import Case, check, mismatch

CASES = [
    Case(args=(torch.zeros(2),), expected=torch.full((2,), 0.5), label="uniform logits"),
    Case(args=(torch.tensor([0.0, 100.0]),), expected=torch.tensor([0.0, 1.0]), label="large logit"),
]


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
    assert "✗ attention: not implemented yet" in out


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
    assert "expected a tensor" in mismatch([1, 2], torch.tensor([1, 2]))


def test_bad_arguments():
    with pytest.raises(TypeError, match="function"):
        check(3, [((1,), 1)])
    with pytest.raises(ValueError, match="at least one case"):
        check(softmax, [])
    with pytest.raises(TypeError, match="case 1"):
        check(softmax, [42])
