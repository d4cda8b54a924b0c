"""Input checks shared by the model configs and functions (chapters 01-13: every model's configuration uses them).

Each raises as soon as an input is wrong, before anything large is allocated, with a message that names what was
expected and what came: ``ValueError`` for a wrong value, ``TypeError`` for a wrong kind of value.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["MAX_SIZE", "describe", "check_int", "check_positive_ints", "check_divisible", "check_one_of",
           "check_number", "check_probability", "check_id", "check_token_ids", "check_like"]

MAX_SIZE = 2**20   # no width, length, vocabulary or layer count of a course model comes near; a typo often does


def describe(x) -> str:
    """A short description of ``x`` for error messages: "torch.int64 (2, 3)" for a tensor (with " on cuda:0" off the
    CPU), else its type's name."""
    if not isinstance(x, torch.Tensor):
        return type(x).__name__
    return f"{x.dtype} {tuple(x.shape)}" + (f" on {x.device}" if x.device.type != "cpu" else "")


def check_int(value, name: str, minimum: int = 1, maximum: int | None = MAX_SIZE) -> None:
    """Raise ValueError unless ``value`` is an int (a bool is not) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")


def check_positive_ints(obj, names, minimum: int = 1, maximum: int | None = MAX_SIZE) -> None:
    """``check_int`` for each attribute ``names`` of ``obj`` (a config)."""
    for name in names:
        check_int(getattr(obj, name), name, minimum, maximum)


def check_divisible(value: int, name: str, divisor: int, divisor_name: str) -> None:
    """Raise ValueError unless ``value`` is a multiple of ``divisor`` (both checked ints >= 1), e.g. d_model of
    n_heads: every head gets d_model / n_heads features."""
    if value % divisor:
        raise ValueError(f"{name}={value} is not divisible by {divisor_name}={divisor}")


def check_one_of(value, name: str, allowed) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed`` (names of options, e.g. activations)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def check_number(value, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    """Raise unless ``value`` is a finite real number (TypeError for a bool, str or tensor) within the bounds given
    (ValueError; NaN and infinity never are). ``low_open``/``high_open`` exclude the bound itself."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    inside = math.isfinite(value) and (low is None or (value > low if low_open else value >= low)) and \
        (high is None or (value < high if high_open else value <= high))
    if not inside:
        if low is not None and high is not None:
            wanted = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            wanted = f"{'>' if low_open else '>='} {low}"
        elif high is not None:
            wanted = f"{'<' if high_open else '<='} {high}"
        else:
            wanted = "finite"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")


def check_probability(value, name: str) -> None:
    """A dropout rate: a number in [0, 1) (1 would drop everything)."""
    check_number(value, name, 0.0, 1.0, high_open=True)


def check_id(value, name: str, vocab_size: int, optional: bool = False) -> None:
    """Raise ValueError unless ``value`` is a token id in [0, vocab_size) (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}){' or None' * optional}, got {value!r}")


def check_token_ids(ids, vocab_size: int, device: torch.device | None = None, name: str = "input_ids") -> None:
    """Raise ValueError unless ``ids`` is a LongTensor (batch, length) of ids in [0, vocab_size), on ``device`` (the
    model's: checked first, since reading the ids' range from another device may not work)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2:
        raise ValueError(f"{name} must be a LongTensor (batch, length), got {describe(ids)}")
    if device is not None and ids.device != device:
        raise ValueError(f"{name} are on {ids.device} but the model is on {device}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got values in [{ids.min().item()}, "
                         f"{ids.max().item()}]")


def _autocast(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type)
    except RuntimeError:   # a device type autocast does not know (meta)
        return False


def check_like(x, name: str, weight: torch.Tensor) -> None:
    """Raise unless ``x`` is a tensor on the device (ValueError) and with the dtype (TypeError) of a module's
    ``weight``. Under autocast a floating-point ``x`` may differ in dtype: PyTorch casts per operation there."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {describe(x)}")
    if x.device != weight.device:
        raise ValueError(f"{name} is on {x.device} but the module's weights are on {weight.device}; move one to the "
                         "other")
    if x.dtype != weight.dtype and not (x.is_floating_point() and _autocast(x.device)):
        raise TypeError(f"{name} has dtype {x.dtype} but the module's weights are {weight.dtype}; pass "
                        f"{name}.to({weight.dtype})")
