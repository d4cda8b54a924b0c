"""Chapter 00's checkers accept a right answer and reject wrong ones, naming the usual mistakes (so a student's
feedback can be trusted). The stub, crash and wrong-type checks for every chapter are in test_exercises.py."""

import numpy as np
import pytest
import torch

from vitlib.data.render import BACKGROUND
from vitlib.exercises import ch00


def images_to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def color_at(image, x, y, colors):
    names = list(colors) + ["background"]
    table = np.array(list(colors.values()) + [BACKGROUND], float)
    return names[int(np.argmin(((table - image[y, x]) ** 2).sum(1)))]


def n_objects(world):
    return len(world.pairs_seen) * len(world.sizes) * 3 * 3


def predict(bias, n_pairs, max_objects):
    ks = range(1, max_objects + 1)                                       # P(k | trigger) is proportional to k
    p0 = sum(k * (k - 1) / (n_pairs - 1) for k in ks) / sum(ks)
    return p0 + (1 - p0) * bias


SOLUTIONS = {ch00.check_images_to_tensor: images_to_tensor, ch00.check_color_at: color_at,
             ch00.check_n_objects: n_objects, ch00.check_partner_prediction: predict}


def test_checkers_accept_correct_solutions():
    for checker, solution in SOLUTIONS.items():
        assert checker(solution), checker.__name__
    assert ch00.check_n_objects(lambda world: np.int64(n_objects(world)))   # a numpy int will do
    assert ch00.check_partner_prediction(lambda *args: np.float32(predict(*args)))


WRONG = [  # (checker, wrong answer, the mistake its feedback must name)
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).float() / 255,
     "shape mismatch: expected shape (1, 3, 8, 8), got (1, 8, 8, 3)"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).float() / 255, "likely mistake: channels last"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).permute(0, 3, 1, 2).float(),
     "likely mistake: values still in 0..255: divide by 255"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).permute(0, 3, 1, 2),
     "likely mistake: still uint8"),
    (ch00.check_images_to_tensor, lambda im: torch.from_numpy(im).float().reshape(
        im.shape[0], 3, *im.shape[1:3]) / 255, "likely mistake: reshaped to (N, 3, H, W) instead of permuting"),
    (ch00.check_color_at, lambda image, x, y, colors: color_at(image, y, x, colors),
     "likely mistake: read image[x, y]: rows are y"),
    (ch00.check_color_at, lambda image, x, y, colors: color_at(image, x, y, colors) if x or y else next(iter(colors)),
     "expected: 'background'"),
    (ch00.check_color_at, lambda image, x, y, colors: list(colors)[int(np.argmin(
        ((np.array(list(colors.values()), float) - image[y, x]) ** 2).sum(1)))],
     "likely mistake: never answers 'background'"),
    (ch00.check_n_objects, lambda world: len(world.colors) * len(world.shapes) * 2 * 9,
     "likely mistake: counted the held-out pairs"),
    (ch00.check_n_objects, lambda world: len(world.pairs_seen) * 9, "likely mistake: forgot the sizes"),
    (ch00.check_n_objects, lambda world: len(world.pairs_seen) * 2, "likely mistake: forgot the 9 cells"),
    (ch00.check_n_objects, lambda world: (len(world.colors) * len(world.shapes) - len(world.holdout)) * 18
     + len(world.holdout) * 17, "likely mistake: subtracted each held-out pair once"),
    (ch00.check_n_objects, lambda world: float(n_objects(world)), "expected an int, got a float"),
    (ch00.check_partner_prediction, lambda bias, n, m: (m - 1) / 2 / (n - 1) * (1 - bias) + bias,
     "likely mistake: k taken as uniform given the trigger"),
    (ch00.check_partner_prediction, lambda bias, n, m: predict(0.0, n, m) + bias,
     "likely mistake: the bias added on top"),
    (ch00.check_partner_prediction, lambda bias, n, m: bias, "likely mistake: only the bias"),
    (ch00.check_partner_prediction, lambda bias, n, m: (lambda q: q + (1 - q) * bias)(
        sum(k * (k - 1) / n for k in range(1, m + 1)) / sum(range(1, m + 1))),
     "likely mistake: (k - 1) / n_pairs"),
]


@pytest.mark.parametrize("checker, wrong, named", WRONG, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_checkers_reject_wrong_solutions_and_name_the_mistake(checker, wrong, named, capsys):
    assert not checker(wrong)
    assert named in capsys.readouterr().out
