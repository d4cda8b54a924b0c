"""An attribute classifier for one-object ShapesWorld scenes: an image encoder and one linear head per attribute
(colour, shape, size, position), logits_a = W_a f(I) + b_a (chapter 04).

The course checkpoint "shapes-classifier" is one; "shapes-judge" (vitlib.recipes.shapes_judge) is another, trained on
degraded renders so that chapter 09 can judge the images its models generate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .data.language import POSITIONS
from .data.render import COLORS, GRID, SHAPES, SIZES, to_tensor
from .checks import check_one_of, check_positive_ints, describe
from .vision import CNNConfig, CNNEncoder, ViT, ViTConfig, check_images
from .zoo import register_model

ATTRIBUTES: dict[str, tuple[str, ...]] = {"color": tuple(COLORS), "shape": SHAPES, "size": SIZES,
                                          "position": tuple(name for row in POSITIONS for name in row)}


def scene_labels(scenes) -> dict[str, torch.Tensor]:
    """One-object ShapesWorld scenes -> {attribute: LongTensor (N,)} of indices into ``ATTRIBUTES[attribute]``."""
    rows = []
    for s in scenes:
        if not hasattr(s, "objects"):
            raise TypeError(f"scene_labels needs ShapesWorld scenes, got a {describe(s)}")
        if len(s.objects) != 1:
            raise ValueError(f"scene_labels needs one-object scenes, got a scene with {len(s.objects)} objects")
        o = s.objects[0]
        rows.append((ATTRIBUTES["color"].index(o.color), ATTRIBUTES["shape"].index(o.shape),
                     ATTRIBUTES["size"].index(o.size), o.position[0] * GRID + o.position[1]))
    table = torch.tensor(rows, dtype=torch.long).reshape(-1, len(ATTRIBUTES))   # (N, 4)
    return {name: table[:, i] for i, name in enumerate(ATTRIBUTES)}


@dataclass
class AttributeClassifierConfig:
    """Which encoder ("cnn" or "vit") with which settings (the fields of CNNConfig or ViTConfig)."""

    encoder: str = "cnn"
    encoder_config: dict = field(default_factory=dict)
    image_size: int = 32

    def __post_init__(self):
        check_one_of(self.encoder, "encoder", ENCODERS)
        check_positive_ints(self, ["image_size"])
        encoder_config = self.build_encoder_config()   # checked now, before any weight is allocated
        if encoder_config.in_channels != 3:
            raise ValueError(f"the encoder must take RGB images (in_channels=3), got in_channels="
                             f"{encoder_config.in_channels}")
        if self.encoder == "vit" and encoder_config.image_size != self.image_size:
            raise ValueError(f"image_size={self.image_size} differs from the ViT's {encoder_config.image_size}")

    def build_encoder_config(self):
        """The encoder's own config (a CNNConfig or ViTConfig) built from ``encoder_config``."""
        config_cls = ENCODERS[self.encoder][1]
        if not isinstance(self.encoder_config, dict):
            raise TypeError(f"encoder_config must be a dict of {config_cls.__name__} fields, got "
                            f"{describe(self.encoder_config)}")
        if unknown := sorted(set(self.encoder_config) - {f.name for f in dataclasses.fields(config_cls)}):
            raise ValueError(f"encoder_config has fields {unknown} that {config_cls.__name__} does not; it has "
                             f"{[f.name for f in dataclasses.fields(config_cls)]}")
        return config_cls(**self.encoder_config)

    def build_encoder(self) -> nn.Module:
        return ENCODERS[self.encoder][0](self.build_encoder_config())


ENCODERS = {"cnn": (CNNEncoder, CNNConfig), "vit": (ViT, ViTConfig)}


@register_model(config_cls=AttributeClassifierConfig)
class AttributeClassifier(nn.Module):
    """An encoder v = f(I) and one linear head per attribute: logits_a = W_a v + b_a.

    ``AttributeClassifier(encoder, image_size=32)`` wraps a CNNEncoder or ViT; ``AttributeClassifier(config)``
    builds one from an AttributeClassifierConfig (as the zoo does).
    """

    def __init__(self, encoder: nn.Module | AttributeClassifierConfig, image_size: int = 32):
        super().__init__()
        if isinstance(encoder, AttributeClassifierConfig):
            config, encoder = encoder, encoder.build_encoder()
        elif isinstance(encoder, (CNNEncoder, ViT)):
            kind = "cnn" if isinstance(encoder, CNNEncoder) else "vit"
            config = AttributeClassifierConfig(kind, dataclasses.asdict(encoder.config), image_size)
        else:
            raise TypeError(f"AttributeClassifier expects a CNNEncoder, a ViT or an AttributeClassifierConfig, "
                            f"got {type(encoder).__name__}")
        self.config, self.encoder = config, encoder
        self.heads = nn.ModuleDict({a: nn.Linear(encoder.feature_dim, len(v)) for a, v in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) in [0, 1] -> {attribute: logits (B, n_values)}."""
        check_images(images, 3, self.config.image_size)
        v = self.encoder(images)                                 # (B, feature_dim)
        return {a: head(v) for a, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images) -> dict[str, torch.Tensor]:
        """{attribute: LongTensor (B,)} for float images (B, 3, H, W) in [0, 1] or uint8 arrays (B, H, W, 3)."""
        if isinstance(images, np.ndarray):
            images = to_tensor(images if images.ndim == 4 else images[None])
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a float tensor (B, 3, H, W) or a uint8 array (B, H, W, 3), got "
                            f"{describe(images)}")
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            logits = self(images.to(device))
        finally:
            self.train(was_training)
        return {a: l.argmax(dim=-1) for a, l in logits.items()}

    def describe(self, images) -> list[tuple[str, str, str, str]]:
        """(colour, shape, size, position) names of the one object in each image."""
        pred = {a: p.tolist() for a, p in self.predict(images).items()}
        return [tuple(ATTRIBUTES[a][pred[a][i]] for a in ATTRIBUTES) for i in range(len(pred["color"]))]
