"""Comparing a student's answer with the expected one: the type first, then the value (chapter 00).

A tensor must be a tensor of the expected shape and dtype, an int an int (not a bool), a float a number within
tolerance, containers item by item; the student's object is never asked whether it is equal (its ``__eq__``
could say yes to anything). ``mismatch(got, expected)`` returns None when they agree, else why they differ.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["kind", "mismatch", "short_repr", "type_name"]


def short_repr(x, limit: int = 80) -> str:
    """A one-line repr: small tensors with their values, big ones by shape and dtype; long text cut."""
    if isinstance(x, torch.Tensor) and x.numel() > 8:
        return f"tensor(shape={tuple(x.shape)}, dtype={str(x.dtype).removeprefix('torch.')})"
    if isinstance(x, np.ndarray) and x.size > 8:
        return f"array(shape={x.shape}, dtype={x.dtype})"
    try:
        text = " ".join(repr(x).split())  # tensors print over several lines
    except Exception as err:  # a student's object whose __repr__ fails
        return f"<{type_name(x)} whose repr raised {type(err).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def type_name(x) -> str:
    """`int`, `torch.Tensor`, `numpy.ndarray`, `Liar`: the type a student's value has, as they would write it."""
    t = type(x)
    root = t.__module__.split(".")[0]
    return f"{root}.{t.__qualname__}" if root in ("torch", "numpy") else t.__qualname__


def kind(x) -> str:
    """The type of x with its article: 'an int', 'a torch.Tensor'."""
    name = type_name(x)
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def _tensor_mismatch(got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> str | None:
    """Compare two tensors: shape and dtype first, then values."""
    problems = []
    if tuple(got.shape) != tuple(expected.shape):
        problems.append(f"shape mismatch: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:
        problems.append(f"dtype mismatch: expected {expected.dtype}, got {got.dtype}")
    if problems:
        return "; ".join(problems)
    g, e = got.detach().cpu(), expected.detach().cpu()
    if expected.is_floating_point() or expected.is_complex():
        wide = torch.complex128 if expected.is_complex() else torch.float64
        g, e = g.to(wide), e.to(wide)
        if torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            return None
        same = (g == e) | (g.isnan() & e.isnan())   # equal infinities and NaNs differ by nothing, not by NaN
        diff = torch.where(same, 0.0, (g - e).abs()).nan_to_num(nan=math.inf, posinf=math.inf)
        where = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape))
        return f"values differ: largest difference {diff.max().item():.3g} at index {where}"
    if torch.equal(g, e):
        return None
    where = tuple(int(i) for i in (g != e).nonzero()[0])
    return f"values differ: first difference at index {where}"


def _number(got) -> tuple[float | None, str | None]:
    """got as a float when it is a number (a 0-d tensor or numpy scalar will do), else why not."""
    if isinstance(got, (bool, np.bool_)):
        return None, f"expected a float, got a bool ({got})"
    if isinstance(got, (int, float, np.integer, np.floating)):
        return float(got), None
    if isinstance(got, (torch.Tensor, np.ndarray)):
        if got.ndim != 0:
            return None, (f"expected a float (a 0-d tensor will do), got {kind(got)} of shape {tuple(got.shape)}"
                          " — reduce it to one number")
        real = got.dtype != torch.bool and not got.is_complex() if isinstance(got, torch.Tensor) else \
            got.dtype.kind in "iuf"
        if not real:
            return None, f"expected a float, got {kind(got)} of dtype {got.dtype}"
        return float(got.item()), None
    return None, f"expected a float, got {kind(got)}"


def mismatch(got, expected, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """Why `got` is not `expected` (None when they agree). The type is checked first, and `got`'s own `==`
    is never trusted.

    Tensors: a tensor of the same shape, dtype and (allclose) values; numpy arrays likewise; floats: a number
    within tolerance; ints: an int (numpy's will do, a bool will not) of the same value; str, bool: that type;
    tuples and lists (either), dicts: item by item; anything else: the same type and `expected == got`.
    """
    if expected is not None and got is None:
        return "got None: did the function forget to `return` its result?"
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return (f"expected a torch.Tensor of shape {tuple(expected.shape)} and dtype {expected.dtype}, "
                    f"got {kind(got)}")
        return _tensor_mismatch(got, expected, rtol, atol)
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"expected a numpy.ndarray of shape {expected.shape} and dtype {expected.dtype}, got {kind(got)}"
        if got.dtype != expected.dtype:
            return f"dtype mismatch: expected {expected.dtype}, got {got.dtype}"
        return _tensor_mismatch(torch.as_tensor(got), torch.as_tensor(expected), rtol, atol)
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)):
            return f"expected a bool, got {kind(got)}"
        return None if bool(got) == bool(expected) else "values differ"
    if isinstance(expected, (int, np.integer)):
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            hint = " (use // for a whole number)" if isinstance(got, float) else \
                " (use .item() for a Python number)" if isinstance(got, torch.Tensor) else ""
            return f"expected an int, got {kind(got)}{hint}"
        return None if int(got) == int(expected) else f"values differ by {int(got) - int(expected)}"
    if isinstance(expected, (float, np.floating)):
        value, why = _number(got)
        if why is not None:
            return why
        if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol) or (math.isnan(value) and math.isnan(expected)):
            return None
        return f"numbers differ by {abs(value - expected):.3g}"
    if isinstance(expected, str):
        if not isinstance(got, str):
            return f"expected a str, got {kind(got)}"
        return None if str.__str__(got) == expected else "values differ"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"expected {kind(expected)} of {len(expected)} items, got {kind(got)}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            if (why := mismatch(g, e, rtol, atol)) is not None:
                return f"item [{i}]: {why}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {kind(got)}"
        if set(got) != set(expected):
            return f"keys differ: missing {sorted(map(str, set(expected) - set(got)))}, " \
                   f"unexpected {sorted(map(str, set(got) - set(expected)))}"
        for k in expected:
            if (why := mismatch(got[k], expected[k], rtol, atol)) is not None:
                return f"key {k!r}: {why}"
        return None
    if expected is None:
        return None if got is None else f"expected None, got {kind(got)}"
    if type(got) is not type(expected):
        return f"expected {kind(expected)}, got {kind(got)}"
    return None if bool(expected == got) else "values differ"  # both are the checker's type: its == is trusted
