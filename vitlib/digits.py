"""scikit-learn's bundled handwritten digits, and the small CNN that judges generated digits (chapter 08).

Data. ``load_digits()``: 1797 grey 8x8 images with values 0..16 and labels 0..9, rescaled to [-1, 1]
(x = v / 8 - 1), the range a DDPM's Gaussian x_T and its clip act on. A fixed split by index, shuffled once with
``SPLIT_SEED``: 1097 train, 350 val, 350 test. Val and test are the same size, so the real-vs-real Fréchet
distance (val vs test) is measured at the sample size every other row of the quality table uses.

Resolution: the native 8x8. Upsampling to 16x16 adds no information (it interpolates the same 64 numbers), and on
one CPU core it makes a UNet training step ~4x slower (measured: 135 ms vs 516 ms per batch of 128 for the same
UNet), so a 25-minute budget buys ~4x fewer steps; at 8x8 a digit is still easily read by the judge (>= 97%).

The judge: x (B, 1, 8, 8) -> Conv-ReLU x2 -> pool -> Conv-ReLU -> pool -> Linear-ReLU = f(x) (B, 64) -> Linear
-> logits (B, 10). f(x), its penultimate features, is the feature space of the Fréchet distance
(``vitlib.sample_quality``), as Inception's pool features are for FID.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_ints, describe
from .metrics import accuracy_with_interval
from .zoo import register_model

__all__ = ["SPLIT_SEED", "SPLIT_SIZES", "load", "to_images", "JudgeConfig", "DigitJudge", "train_judge",
           "judge_accuracy"]

SPLIT_SEED = 0
SPLIT_SIZES = {"train": 1097, "val": 350, "test": 350}


def to_images(values) -> torch.Tensor:
    """sklearn's digit values 0..16, (N, 64) or (N, 8, 8) -> float images (N, 1, 8, 8) in [-1, 1]: v / 8 - 1."""
    x = torch.as_tensor(values, dtype=torch.float32)
    if x.dim() not in (2, 3) or x.shape[-1] * (x.shape[-2] if x.dim() == 3 else 1) != 64:
        raise ValueError(f"expected digit values of shape (N, 64) or (N, 8, 8), got {tuple(x.shape)}")
    return (x.reshape(-1, 1, 8, 8) / 8.0 - 1.0)


def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 8, 8) in [-1, 1], labels LongTensor (N,)) of split "train", "val", "test" or "all"."""
    if split not in (*SPLIT_SIZES, "all"):
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join((*SPLIT_SIZES, 'all'))}")
    from sklearn.datasets import load_digits   # bundled with scikit-learn: no download

    digits = load_digits()
    images, labels = to_images(digits.data), torch.as_tensor(digits.target, dtype=torch.long)
    if split == "all":
        return images, labels
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    start = 0
    for name, n in SPLIT_SIZES.items():
        if name == split:
            index = order[start:start + n]
            return images[index], labels[index]
        start += n


@dataclass
class JudgeConfig:
    """Widths of the judge's two conv stages and of its feature vector f(x)."""

    channels: tuple[int, ...] = (32, 64)
    feature_dim: int = 64
    n_classes: int = 10
    dropout: float = 0.2

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if len(self.channels) != 2:
            raise ValueError(f"channels must give the widths of the two conv stages, got {self.channels}")
        check_positive_ints(self, ["feature_dim", "n_classes"])


@register_model(config_cls=JudgeConfig)
class DigitJudge(nn.Module):
    """A digit classifier for 8x8 images in [-1, 1]: ``features(x)`` (B, feature_dim), ``forward(x)`` logits (B, 10)."""

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = c = config
        c1, c2 = c.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                                 # (B, c1, 4, 4)
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))     # (B, c2, 2, 2)
        self.fc = nn.Linear(c2 * 4, c.feature_dim)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.feature_dim, c.n_classes)

    def _check(self, x):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 or \
                tuple(x.shape[1:]) != (1, 8, 8) or x.shape[0] == 0:
            raise ValueError(f"the judge takes images (B >= 1, 1, 8, 8) in [-1, 1], got {describe(x)}")
        return x.to(self.fc.weight.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = ReLU(W flatten(conv(x)) + b), (B, feature_dim): the Fréchet distance's feature space."""
        h = self.conv(self._check(x)).flatten(1)                             # (B, c2 * 4)
        return F.relu(self.fc(h))                                            # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))                        # (B, n_classes)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """softmax(logits), (B, 10), in eval mode (the mode is restored)."""
        was = self.training
        self.eval()
        out = torch.cat([self(x[i:i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)])
        self.train(was)
        return out


def shift(images: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Move each image by up to ``max_shift`` pixels in x and y, filling with the background (-1)."""
    B = images.shape[0]
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)                     # (B, 1, 8 + 2m, 8 + 2m)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    return torch.stack([padded[b, :, dy[b]:dy[b] + 8, dx[b]:dx[b] + 8] for b in range(B)])


def train_judge(steps: int = 1500, batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> DigitJudge:
    """Train the judge on the train split (AdamW, cosine learning rate, random 1-pixel shifts); return it in eval
    mode. About 15 s on one CPU core."""
    from .train import param_groups
    from .train import train as run_training

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = load("train")
    model = DigitJudge(JudgeConfig())
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)

    def batches():
        while True:
            i = torch.randint(len(images), (batch_size,), generator=generator)
            yield shift(images[i], generator), labels[i]

    run_training(model, batches(), lambda m, b: F.cross_entropy(m(b[0]), b[1]), optimizer, steps=steps,
                 scheduler=schedule, progress=False)
    return model.eval()


def judge_accuracy(model: DigitJudge, split: str = "test") -> dict:
    """{"accuracy", "interval" (Wilson 95%), "n"} of the judge on a split."""
    images, labels = load(split)
    correct = model.probabilities(images).argmax(-1) == labels
    acc, (lo, hi) = accuracy_with_interval(correct)
    return {"accuracy": acc, "interval": [lo, hi], "n": len(labels)}
