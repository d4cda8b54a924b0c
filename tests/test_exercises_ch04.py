"""Chapter 04's checkers accept a right answer and reject wrong ones, naming the usual mistakes (so a student's
feedback can be trusted). The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitlib.exercises import ch04


def patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)        # (B, C, h, p1, w, p2)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def receptive_field(kernel_sizes, strides):
    r, jump = 1, 1
    for k, s in zip(kernel_sizes, strides):
        r += (k - 1) * jump        # this layer's window, spaced by the strides before it
        jump *= s
    return r


def circular_pad(x, p):
    x = torch.cat([x[..., -p:, :], x, x[..., :p, :]], dim=-2)        # (B, C, H + 2p, W)
    return torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)           # (B, C, H + 2p, W + 2p)


def count_vit_parameters(c):
    D, N = c.d_model, c.n_patches
    per_layer = 4 * D + 4 * (D * D + D) + 2 * D * c.d_ff + c.d_ff + D
    return c.patch_size ** 2 * c.in_channels * D + D + D + (N + 1) * D + c.n_layers * per_layer + 2 * D


SOLUTIONS = {ch04.check_patchify: patchify, ch04.check_receptive_field: receptive_field,
             ch04.check_circular_pad: circular_pad, ch04.check_count_vit_parameters: count_vit_parameters}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__


def channels_first(images, p):  # flattens (c, p1, p2): the conv weight's order, not the one we use
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), p * p * C)


def wrapped_from_the_wrong_side(x, p):   # the first rows go on top, the last at the bottom
    x = torch.cat([x[..., :p, :], x, x[..., -p:, :]], dim=-2)
    return torch.cat([x[..., :p], x, x[..., -p:]], dim=-1)


WRONG = [  # (checker, wrong answer, what its feedback must say)
    (ch04.check_patchify, channels_first, "right values in the wrong order"),
    (ch04.check_patchify, channels_first, "likely mistake: flattened (c, p1, p2)"),
    (ch04.check_patchify, lambda x, p: channels_first(x, p).double(),  # crashed the checker's own comparison once
     "dtype mismatch: expected torch.float32, got torch.float64"),
    (ch04.check_patchify, lambda x, p: patchify(x.transpose(2, 3), p).reshape(x.shape[0], -1, p, p, x.shape[1])
     .transpose(2, 3).reshape(x.shape[0], -1, p * p * x.shape[1]), "likely mistake: patches numbered column by column"),
    (ch04.check_receptive_field, lambda ks, ss: receptive_field(ks, ss) + 1, "expected: 17"),
    (ch04.check_receptive_field, lambda ks, ss: receptive_field(ks, [1] * len(ss)),
     "likely mistake: ignored the strides"),
    (ch04.check_receptive_field, lambda ks, ss: 1 + sum((k - 1) * math.prod(ss[:i + 1]) for i, k in enumerate(ks)),
     "likely mistake: multiplied in the layer's own stride"),
    (ch04.check_receptive_field, lambda ks, ss: receptive_field(ks, ss) - 1, "likely mistake: forgot the 1"),
    (ch04.check_receptive_field, lambda ks, ss: receptive_field([k + 1 for k in ks], ss),
     "likely mistake: added k_l instead of k_l - 1"),
    (ch04.check_circular_pad, lambda x, p: F.pad(x, (p, p, p, p)), "likely mistake: padded with zeros"),
    (ch04.check_circular_pad, lambda x, p: F.pad(x, (p, p, p, p), mode="replicate"),
     "likely mistake: repeated the edge pixels"),
    (ch04.check_circular_pad, wrapped_from_the_wrong_side, "likely mistake: wrapped from the wrong side"),
    (ch04.check_circular_pad, lambda x, p: F.pad(x, (0, 0, p, p), mode="circular"),
     "shape mismatch"),
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
