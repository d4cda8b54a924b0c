"""vitlib.classifier: attribute labels of one-object scenes, predictions and descriptions, the zoo round trip and
the checks on bad input (chapter 04)."""

import pytest
import torch
from torch import nn

from vitlib import zoo
from vitlib.classifier import ATTRIBUTES, AttributeClassifier, AttributeClassifierConfig, scene_labels
from vitlib.data import Obj, Scene, ShapesWorld, to_tensor
from vitlib.vision import CNNConfig, CNNEncoder, ViT, ViTConfig


def images(B=2, C=3, H=16, W=16, seed=0):
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(seed))


def test_scene_labels_and_describe():
    scenes = [Scene((Obj("triangle", "blue", "small", (2, 1)),)), Scene((Obj("circle", "red", "large", (0, 0)),))]
    labels = scene_labels(scenes)
    assert {a: labels[a].tolist() for a in ATTRIBUTES} == {"color": [2, 0], "shape": [2, 0], "size": [0, 1],
                                                         "position": [7, 0]}
    assert ATTRIBUTES["position"][7] == "bottom"
    with pytest.raises(ValueError, match="one-object scenes"):
        scene_labels(ShapesWorld(max_objects=3, seed=1).scenes(5))

    model = AttributeClassifier(CNNEncoder(CNNConfig(channels=(4, 8))))
    with torch.no_grad():   # a classifier whose heads answer "purple", "cross", "large", "top right" for any image
        for a, value in (("color", "purple"), ("shape", "cross"), ("size", "large"), ("position", "top right")):
            model.heads[a].weight.zero_()
            model.heads[a].bias.copy_(torch.nn.functional.one_hot(torch.tensor(ATTRIBUTES[a].index(value)),
                                                                  len(ATTRIBUTES[a])).float())
    uint8 = ShapesWorld(max_objects=1, holdout=()).render_batch(scenes)
    assert model.describe(uint8) == [("purple", "cross", "large", "top right")] * 2
    pred = model.predict(to_tensor(uint8))
    assert pred["shape"].dtype == torch.long and pred["shape"].tolist() == [4, 4]
    assert model.training, "predict restores the training mode"


def test_attribute_classifier_config_round_trip(tmp_path):
    vit = ViT(ViTConfig(image_size=32, patch_size=8, d_model=16, n_layers=1, n_heads=2))
    model = AttributeClassifier(vit).eval()
    assert model.config == AttributeClassifierConfig("vit", vit.config.__dict__, 32)
    zoo.save(model, tmp_path / "clf", model.config, {"x": 1})
    loaded = zoo.load(tmp_path / "clf")
    x = images(B=2, H=32, W=32)
    torch.testing.assert_close(loaded(x)["shape"], model(x)["shape"], atol=0, rtol=0)
    with pytest.raises(ValueError, match="image_size=16 differs from the ViT's 32"):
        AttributeClassifier(vit, image_size=16)
    with pytest.raises(ValueError, match="must be 32x32, got 16x16"):
        model(images())
    with pytest.raises(TypeError, match="CNNEncoder, a ViT or an AttributeClassifierConfig"):
        AttributeClassifier(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="unknown encoder 'rnn'"):
        AttributeClassifierConfig("rnn")


def test_config_checks_the_encoder_settings_before_building():
    with pytest.raises(ValueError, match=r"encoder_config has fields \['bogus'\] that CNNConfig does not"):
        AttributeClassifierConfig(encoder_config={"bogus": 1})
    with pytest.raises(ValueError, match=r"image_size=32 differs from the ViT's 16"):
        AttributeClassifierConfig("vit", {"image_size": 16}, 32)
    with pytest.raises(ValueError, match=r"RGB images \(in_channels=3\), got in_channels=1"):
        AttributeClassifier(CNNEncoder(CNNConfig(in_channels=1)))   # built, then failed on every RGB image
