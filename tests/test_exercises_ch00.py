"""Chapter 00's checkers accept a right answer and reject wrong ones, naming the usual mistakes (so a student's
feedback can be trusted). The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import numpy as np
import pytest
import torch

from vitlib.data.render import BACKGROUND
from vitlib.exercises import ch00


def count_shape(scene, shape):
    return sum(o.shape == shape for o in scene.objects)


def images_to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def color_at(image, x, y, colors):
    names = list(colors) + ["background"]
    table = np.array(list(colors.values()) + [BACKGROUND], float)
    return names[int(np.argmin(((table - image[y, x]) ** 2).sum(1)))]


def partner_rate(scenes, trigger, partner):
    return float(np.mean([partner in s.pairs() for s in scenes if trigger in s.pairs()]))


SOLUTIONS = {ch00.check_count_shape: count_shape, ch00.check_images_to_tensor: images_to_tensor,
             ch00.check_color_at: color_at, ch00.check_partner_rate: partner_rate}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch00.check_count_shape(lambda scene, shape: np.sum([o.shape == shape for o in scene.objects]))  # numpy int


WRONG = [  # (checker, wrong answer, the mistake its feedback must name)
    (ch00.check_count_shape, lambda scene, shape: len(scene.objects), "likely mistake: counted every object"),
    (ch00.check_count_shape, lambda scene, shape: any(o.shape == shape for o in scene.objects),
     "expected an int, got a bool"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).float() / 255,
     "shape mismatch: expected shape (1, 3, 8, 8), got (1, 8, 8, 3)"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).float() / 255, "likely mistake: channels last"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).permute(0, 3, 1, 2).float(),
     "likely mistake: values still in 0..255: divide by 255"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).permute(0, 3, 1, 2),
     "likely mistake: still uint8"),
    (ch00.check_color_at, lambda image, x, y, colors: color_at(image, y, x, colors),
     "likely mistake: read image[x, y]: rows are y"),
    (ch00.check_color_at, lambda image, x, y, colors: color_at(image, x, y, colors) if x or y else next(iter(colors)),
     "expected: 'background'"),
    (ch00.check_color_at, lambda image, x, y, colors: list(colors)[int(np.argmin(
        ((np.array(list(colors.values()), float) - image[y, x]) ** 2).sum(1)))],
     "likely mistake: never answers 'background'"),
    (ch00.check_partner_rate, lambda scenes, t, p: float(np.mean([p in s.pairs() for s in scenes])),
     "likely mistake: P(partner) over all scenes"),
    (ch00.check_partner_rate, lambda scenes, t, p: partner_rate(scenes, p, t), "likely mistake: P(trigger | partner)"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
