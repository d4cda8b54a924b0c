"""Chapter 04's checkers accept a right answer and reject wrong ones, naming the usual mistakes (so a student's
feedback can be trusted). The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import pytest
import torch

from vitlib.exercises import ch04


def patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)        # (B, C, h, p1, w, p2)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def conv_output_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def prepend_class_token(x, cls):
    return torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)


def count_vit_parameters(c):
    D, N = c.d_model, c.n_patches
    per_layer = 4 * D + 4 * (D * D + D) + 2 * D * c.d_ff + c.d_ff + D
    return c.patch_size ** 2 * c.in_channels * D + D + D + (N + 1) * D + c.n_layers * per_layer + 2 * D


SOLUTIONS = {ch04.check_patchify: patchify, ch04.check_conv_output_size: conv_output_size,
             ch04.check_prepend_class_token: prepend_class_token, ch04.check_count_vit_parameters: count_vit_parameters}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def channels_first(images, p):  # flattens (c, p1, p2): the conv weight's order, not the one we use
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), p * p * C)


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch04.check_patchify, channels_first, "right values in the wrong order"),
    (ch04.check_patchify, channels_first, "likely mistake: flattened (c, p1, p2)"),
    (ch04.check_patchify, lambda x, p: channels_first(x, p).double(),  # crashed the checker's own comparison once
     "dtype mismatch: expected torch.float32, got torch.float64"),
    (ch04.check_patchify, lambda x, p: patchify(x.transpose(2, 3), p).reshape(x.shape[0], -1, p, p, x.shape[1])
     .transpose(2, 3).reshape(x.shape[0], -1, p * p * x.shape[1]), "likely mistake: patches numbered column by column"),
    (ch04.check_conv_output_size, lambda n, k, s, p: n // s, "expected: 24"),
    (ch04.check_conv_output_size, lambda n, k, s, p: (n + p - k) // s + 1, "likely mistake: padding counted once"),
    (ch04.check_conv_output_size, lambda n, k, s, p: (n + 2 * p - k) // s, "likely mistake: forgot the + 1"),
    (ch04.check_conv_output_size, lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "likely mistake: rounded up"),
    (ch04.check_conv_output_size, lambda n, k, s, p: (n + 2 * p - k) / s + 1,
     "expected an int, got a float (use // for a whole number)"),
    (ch04.check_prepend_class_token, lambda x, cls: torch.cat([x, cls.expand(x.shape[0], -1, -1)], dim=1),
     "likely mistake: class token appended last"),
    (ch04.check_prepend_class_token, lambda x, cls: torch.cat([cls, x], dim=1),   # batch of one only
     "hint: cls_token is (1, 1, D), one for the whole batch: expand it"),
    (ch04.check_count_vit_parameters, lambda c: count_vit_parameters(c) - (c.n_patches + 1) * c.d_model,
     "likely mistake: forgot the position embedding"),
    (ch04.check_count_vit_parameters, lambda c: count_vit_parameters(c) - c.d_model,
     "likely mistake: off by d_model: forgot the class token"),
    (ch04.check_count_vit_parameters, lambda c: count_vit_parameters(c) - 4 * c.d_model * c.n_layers,
     "likely mistake: forgot the two LayerNorms in each layer"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
