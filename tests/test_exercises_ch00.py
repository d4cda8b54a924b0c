"""Chapter 00's checkers accept a right answer and reject wrong ones (so a student's feedback can be trusted)."""

import numpy as np
import torch

from vitlib.data.render import BACKGROUND
from vitlib.exercises import ch00


def count_shape(scene, shape):
    return sum(o.shape == shape for o in scene.objects)


def color_at(image, x, y, colors):
    names = list(colors) + ["background"]
    table = np.array(list(colors.values()) + [BACKGROUND], float)
    return names[int(np.argmin(((table - image[y, x]) ** 2).sum(1)))]


def partner_rate(scenes, trigger, partner):
    return float(np.mean([partner in s.pairs() for s in scenes if trigger in s.pairs()]))


def test_checkers_accept_correct_solutions():
    assert ch00.check_count_shape(count_shape)
    assert ch00.check_images_to_tensor(lambda im: torch.from_numpy(im).permute(0, 3, 1, 2).float() / 255)
    assert ch00.check_color_at(color_at)
    assert ch00.check_partner_rate(partner_rate)


def test_checkers_reject_wrong_solutions(capsys):
    assert not ch00.check_count_shape(lambda scene, shape: len(scene.objects))
    assert not ch00.check_images_to_tensor(lambda im: torch.from_numpy(im).float() / 255)  # channels last
    assert not ch00.check_images_to_tensor(lambda im: torch.from_numpy(im).permute(0, 3, 1, 2).float())  # not scaled
    assert not ch00.check_color_at(lambda image, x, y, colors: next(iter(colors)))
    assert not ch00.check_partner_rate(lambda scenes, t, p: float(np.mean([p in s.pairs() for s in scenes])))
    out = capsys.readouterr().out
    assert "shape mismatch: expected shape (1, 3, 8, 8), got (1, 8, 8, 3)" in out
    assert "expected: 'background'" in out


def test_stub_gets_a_reminder_not_a_traceback(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch00.check_count_shape(stub)
    assert "not implemented yet" in capsys.readouterr().out
