"""Chapter 04's checkers accept a right answer and reject wrong ones (so a student's feedback can be trusted)."""

import torch

from vitlib.exercises import ch04


def patchify(images, p):
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p)        # (B, C, h, p1, w, p2)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // p), p * p * C)


def conv_output_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def count_vit_parameters(c):
    D, N = c.d_model, c.n_patches
    per_layer = 4 * D + 4 * (D * D + D) + 2 * D * c.d_ff + c.d_ff + D
    return c.patch_size ** 2 * c.in_channels * D + D + D + (N + 1) * D + c.n_layers * per_layer + 2 * D


def test_checkers_accept_correct_solutions():
    assert ch04.check_patchify(patchify)
    assert ch04.check_conv_output_size(conv_output_size)
    assert ch04.check_prepend_class_token(lambda x, cls: torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1))
    assert ch04.check_count_vit_parameters(count_vit_parameters)


def test_checkers_reject_wrong_solutions(capsys):
    def channels_first(images, p):  # flattens (c, p1, p2): the conv weight's order, not the one we use
        B, C, H, W = images.shape
        x = images.reshape(B, C, H // p, p, W // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), p * p * C)

    assert not ch04.check_patchify(channels_first)
    assert not ch04.check_conv_output_size(lambda n, k, s, p: n // s)
    assert not ch04.check_conv_output_size(lambda n, k, s, p: (n + p - k) // s + 1)
    assert not ch04.check_prepend_class_token(lambda x, cls: torch.cat([x, cls.expand(x.shape[0], -1, -1)], dim=1))
    assert not ch04.check_prepend_class_token(lambda x, cls: torch.cat([cls, x], dim=1))   # batch of one only
    assert not ch04.check_count_vit_parameters(lambda c: count_vit_parameters(c) - (c.n_patches + 1) * c.d_model)
    out = capsys.readouterr().out
    assert "right values in the wrong order" in out
    assert "expected: 8" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch04.check_patchify(stub)
    assert "not implemented yet" in capsys.readouterr().out
