"""How good are generated samples? Measures that use a classifier as a judge (chapter 08; chapter 09 reuses them).

With p(y | x) the judge's class probabilities and f(x) its penultimate features:

    confident share     c(X) = (1/N) sum_i [max_y p(y | x_i) >= tau],  tau = 0.9
    relative confidence c(samples) / c(real held-out images)    (1.0: as legible as real digits)
    class coverage      H = -sum_k q_k log q_k,  q_k = share of samples whose argmax_y p(y | x) is k;
                        H / log K = 1 when every class is drawn equally often, 0 when one class is all there is
    Fréchet distance    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})
                        between Gaussians fitted (mean mu, covariance S) to f(samples) and f(real images): FID
                        (Heusel et al., 2017) with the judge in Inception's place. FD is biased upwards at small N,
                        so rows of one table compare the same N (the real-vs-real row gives its floor).
    nearest neighbour   d_NN(x) = min_j ||x - t_j||_2 over the training images t_j: a model that copies its
                        training set has d_NN(samples) far below d_NN(real held-out images).

torchmetrics' FrechetInceptionDistance (with ``feature=`` a module) computes the same FD; ``frechet_distance``
implements the formula with scipy's ``sqrtm``, and its tests check it against the closed form for Gaussians whose
covariances commute and against torchmetrics in the digit judge's feature space.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .checks import check_number, describe
from .metrics import wilson_interval

__all__ = ["confident_share", "coverage_entropy", "gaussian_stats", "frechet_distance", "feature_frechet_distance",
           "nearest_neighbour_distance", "quality_report"]


def _probabilities(probs, name: str = "probs") -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[0] == 0 or probs.shape[1] < 2 or \
            not probs.is_floating_point():
        raise ValueError(f"{name} must be class probabilities (N >= 1, K >= 2), got {describe(probs)}")
    if not torch.isfinite(probs).all() or probs.min() < 0 or \
            not torch.allclose(probs.sum(-1), torch.ones(len(probs), dtype=probs.dtype), atol=1e-4):
        raise ValueError(f"{name} rows must be probabilities (>= 0, summing to 1): pass softmax(logits), not logits")
    return probs


def _points(x, name: str, min_rows: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < min_rows:
        raise ValueError(f"{name} must be a float tensor (N >= {min_rows}, ...), got {describe(x)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x.reshape(len(x), -1).double()                                    # (N, D)


def confident_share(probs: torch.Tensor, threshold: float = 0.9) -> tuple[float, tuple[float, float]]:
    """c = share of rows with max_y p(y | x) >= threshold, and its Wilson 95% interval."""
    probs = _probabilities(probs)
    check_number(threshold, "threshold", 0.0, 1.0)
    k = int((probs.max(-1).values >= threshold).sum())
    return k / len(probs), wilson_interval(k, len(probs))


def coverage_entropy(probs: torch.Tensor) -> float:
    """H / log K of the predicted labels' histogram q: 1 = every class equally often, 0 = a single class."""
    probs = _probabilities(probs)
    K = probs.shape[1]
    q = torch.bincount(probs.argmax(-1), minlength=K).double() / len(probs)   # (K,)
    H = -(q[q > 0] * q[q > 0].log()).sum().item()
    return H / math.log(K)


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mu (D,), S (D, D)) of features (N >= 2, D), in float64; S is the unbiased covariance (1 / (N - 1))."""
    f = _points(features, "features", min_rows=2).numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}): the squared 2-Wasserstein distance of two Gaussians."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    D = mu1.shape[0]
    if mu1.shape != (D,) or mu2.shape != (D,) or s1.shape != (D, D) or s2.shape != (D, D):
        raise ValueError(f"expected means (D,) and covariances (D, D) of one D; got mu1 {mu1.shape}, "
                         f"sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("means and covariances must be finite")
    with warnings.catch_warnings():   # ReLU features with dead units make S singular: sqrtm warns, still finite
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)                                     # (S1 S2)^{1/2}
    if not np.isfinite(covmean).all():                                      # singular product: nudge, as FID does
        eps = 1e-6 * np.eye(D)
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real                                                  # drop round-off imaginary parts
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@torch.no_grad()
def feature_frechet_distance(feature, x: torch.Tensor, reference: torch.Tensor) -> float:
    """FD between Gaussians fitted to feature(x) and feature(reference): FID with ``feature`` (e.g. the judge's
    ``features``) in Inception's place."""
    if not callable(feature):
        raise TypeError(f"feature must map images to feature vectors (N, D), got {describe(feature)}")
    return frechet_distance(*gaussian_stats(feature(x)), *gaussian_stats(feature(reference)))


def nearest_neighbour_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """d_NN(x_i) = min_j ||x_i - r_j||_2, (N,) float64: each row's L2 distance to its nearest reference row."""
    a, b = _points(x, "x"), _points(reference, "reference")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and reference must have the same size per item, got {tuple(x.shape)} and "
                         f"{tuple(reference.shape)}")
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values   # (N,), exact


@torch.no_grad()
def quality_report(judge, samples: torch.Tensor, real: torch.Tensor, train: torch.Tensor,
                   threshold: float = 0.9) -> dict:
    """Every measure of the module docstring for ``samples``, with the held-out ``real`` images as reference and
    the ``train`` images for the nearest-neighbour distances. ``judge`` has ``probabilities(x)`` and
    ``features(x)`` (vitlib.digits.DigitJudge)."""
    samples = _points(samples, "samples").float().reshape(samples.shape)
    p_s, p_r = judge.probabilities(samples), judge.probabilities(real)
    share, (lo, hi) = confident_share(p_s, threshold)
    share_real, _ = confident_share(p_r, threshold)
    d_s, d_r = nearest_neighbour_distance(samples, train), nearest_neighbour_distance(real, train)
    return {"n": len(samples), "confident_share": share, "confident_share_interval": [lo, hi],
            "relative_confidence": share / share_real,
            "relative_confidence_interval": [lo / share_real, hi / share_real],
            "coverage": coverage_entropy(p_s), "fd": feature_frechet_distance(judge.features, samples, real),
            "nn_distance": d_s.mean().item(), "nn_distance_real": d_r.mean().item(),
            "nn_ratio": (d_s.mean() / d_r.mean()).item()}
