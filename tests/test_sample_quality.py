"""vitlib.sample_quality: the Fréchet distance against its closed form for Gaussians and against torchmetrics'
FrechetInceptionDistance in the digit judge's feature space, the judge-based shares on hand-made probabilities,
nearest-neighbour distances, and a table of bad inputs."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vitlib import digits, zoo
from vitlib.sample_quality import (confident_share, coverage_entropy, feature_frechet_distance, frechet_distance,
                                   gaussian_stats, nearest_neighbour_distance, quality_report)


def random_rotation(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))                                          # (d, d) orthogonal


def test_frechet_distance_of_commuting_covariances_is_the_closed_form():
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, so (S1 S2)^{1/2} = Q diag(sqrt(ab)) Q^T and
    FD = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(0)
    d = 16
    q = random_rotation(d, rng)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8, abs=1e-9)   # symmetric
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_in_one_dimension():
    """N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2."""
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9 + 1)
    assert frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(10)


def test_feature_frechet_distance_of_samples_approaches_the_closed_form():
    """Samples of two Gaussians: the plug-in FD is the closed form up to sampling error (biased upwards)."""
    g = torch.Generator().manual_seed(0)
    d, n = 4, 20000
    scale = torch.tensor([1.0, 2.0, 0.5, 1.5])
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, d, generator=g, dtype=torch.float64) * scale + 1.0
    expected = d * 1.0 + ((1 - scale) ** 2).sum().item()
    got = feature_frechet_distance(lambda z: z, x, y)
    assert got == pytest.approx(expected, rel=0.03)
    mu, sigma = gaussian_stats(y)
    np.testing.assert_allclose(mu, 1.0, atol=0.05)
    np.testing.assert_allclose(np.diag(sigma), scale.numpy() ** 2, rtol=0.05)


class JudgeFeatures(nn.Module):
    """The judge's f(x) as the module torchmetrics calls in Inception's place; ``num_features`` spares it the
    dummy 299x299 image it would otherwise push through to learn the width."""

    def __init__(self, judge):
        super().__init__()
        self.judge, self.num_features = judge, judge.config.feature_dim

    def forward(self, x):
        return self.judge.features(x)                                       # (N, feature_dim)


@pytest.mark.parametrize("dtype, rel", [(torch.float64, 1e-6), (torch.float32, 1e-5)], ids=["float64", "float32"])
def test_feature_frechet_distance_equals_torchmetrics_fid(dtype, rel):
    """torchmetrics hands a custom ``feature`` module the images as they come (``normalize`` only rescales uint8
    for Inception), sums features and their outer products in float64 and takes Tr (S1 S2)^{1/2} from
    eigenvalues; scipy's sqrtm here. Held-out real digits vs three sets, from close to far: the val digits,
    noisy digits, uniform noise. ``reset_real_features=False`` keeps the real statistics across ``reset``."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    judge = zoo.load("digits-judge", device="cpu").to(dtype).eval()
    real, _ = digits.load("test")
    val, _ = digits.load("val")
    g = torch.Generator().manual_seed(0)
    noisy = (val + 0.5 * torch.randn(val.shape, generator=g)).clamp(-1, 1)
    noise = torch.rand(val.shape, generator=g) * 2 - 1
    fid = FrechetInceptionDistance(feature=JudgeFeatures(judge), reset_real_features=False, normalize=False)
    fid.update(real.to(dtype), real=True)
    ours = []
    for x in (val, noisy, noise):
        fid.reset()                                                         # forgets the samples only
        fid.update(x.to(dtype), real=False)
        theirs = fid.compute()
        assert theirs.dtype == dtype
        ours.append(feature_frechet_distance(judge.features, x.to(dtype), real.to(dtype)))
        assert ours[-1] == pytest.approx(theirs.item(), rel=rel)
    assert 0 < ours[0] < ours[1] < ours[2]                                  # further from real, larger FD


def test_confident_share_and_coverage_on_hand_made_probabilities():
    sure = torch.eye(10)                                                    # one confident row per class
    assert confident_share(sure)[0] == 1.0 and coverage_entropy(sure) == pytest.approx(1.0)
    unsure = torch.full((10, 10), 0.1)
    share, (lo, hi) = confident_share(unsure)
    assert share == 0.0 and lo == 0.0 and 0 < hi < 0.35                    # Wilson: not empty at p = 0
    one_class = torch.eye(10)[[3] * 20]
    assert coverage_entropy(one_class) == 0.0
    half = torch.eye(10)[[0, 1] * 5]                                        # two classes, equally often
    assert coverage_entropy(half) == pytest.approx(math.log(2) / math.log(10))
    p = torch.tensor([[0.9, 0.1], [0.89, 0.11]])
    assert confident_share(p)[0] == 0.5 and confident_share(p, threshold=0.8)[0] == 1.0


def test_nearest_neighbour_distance_finds_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(50, 1, 8, 8, generator=g)
    copies = train[:5] + 0.0
    d = nearest_neighbour_distance(copies, train)
    assert d.shape == (5,) and torch.all(d == 0)
    shifted = train[:5] + 0.1
    torch.testing.assert_close(nearest_neighbour_distance(shifted, train), torch.full((5,), 0.8, dtype=torch.float64))


class FakeJudge:
    """Probabilities: confident in class (sum of pixels) mod 10; features: the flattened image."""

    def probabilities(self, x):
        k = x.flatten(1).sum(1).round().long() % 10
        return torch.eye(10)[k] * 0.95 + 0.005

    def features(self, x):
        return x.flatten(1)


def test_quality_report_of_real_against_itself():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 1, 2, 2, generator=g)
    report = quality_report(FakeJudge(), real, real, real[:100])
    assert report["relative_confidence"] == 1.0 and report["fd"] == pytest.approx(0.0, abs=1e-9)
    assert report["nn_ratio"] == pytest.approx(1.0) and report["n"] == 200
    assert report["relative_confidence_interval"][0] < 1.0 <= report["relative_confidence_interval"][1]


GOOD = torch.eye(10)[:4]
BAD_INPUTS = [
    ("logits, not probabilities", lambda: confident_share(torch.randn(4, 10)), ValueError, "softmax"),
    ("one row of probabilities as 1-D", lambda: confident_share(torch.full((10,), 0.1)), ValueError, r"\(N >= 1, K"),
    ("no samples", lambda: coverage_entropy(torch.zeros(0, 10)), ValueError, r"\(N >= 1, K >= 2\)"),
    ("NaN probabilities", lambda: coverage_entropy(torch.full((2, 10), float("nan"))), ValueError, "probabilities"),
    ("integer labels", lambda: coverage_entropy(torch.tensor([[1, 0], [0, 1]])), ValueError, "class probabilities"),
    ("threshold above 1", lambda: confident_share(GOOD, threshold=1.5), ValueError, "threshold"),
    ("FD of two dimensions", lambda: frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), ValueError,
     "one D"),
    ("FD with NaN", lambda: frechet_distance([np.nan], [[1.0]], [0.0], [[1.0]]), ValueError, "finite"),
    ("one feature row", lambda: gaussian_stats(torch.zeros(1, 4)), ValueError, "N >= 2"),
    ("features not a function", lambda: feature_frechet_distance("judge", torch.zeros(3, 2), torch.zeros(3, 2)),
     TypeError, "feature must map"),
    ("NN of different image sizes", lambda: nearest_neighbour_distance(torch.zeros(2, 1, 8, 8),
                                                                       torch.zeros(3, 1, 16, 16)), ValueError,
     "same size"),
    ("NN of infinite pixels", lambda: nearest_neighbour_distance(torch.full((2, 4), math.inf), torch.zeros(3, 4)),
     ValueError, "NaN or infinite"),
    ("uint8 images", lambda: nearest_neighbour_distance(torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(3, 4)),
     ValueError, "float tensor"),
]


@pytest.mark.parametrize("what, call, error, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_named(what, call, error, message):
    with pytest.raises(error, match=message):
        call()
