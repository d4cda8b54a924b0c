"""vitlib.autoencoder (chapter 09's latent space): shapes, scaling, off-manifold latents, a bad-input table; and the
shipped checkpoint data/zoo/ae-shapes.*, whose stated reconstruction MSE and judged accuracies are recomputed."""

import math

import pytest
import torch

from vitlib import zoo
from vitlib.autoencoder import Autoencoder, AutoencoderConfig
from vitlib.recipes import autoencoder_shapes as recipe

TIMED = {f"{k}_seconds_per_{recipe.SPEED_BATCH}" for k in ("encode", "decode")}


def tiny(**changes) -> Autoencoder:
    torch.manual_seed(0)
    fields = dict(image_size=8, latent_channels=2, channels=(4, 8), groups=2, n_res_blocks=1)
    return Autoencoder(AutoencoderConfig(**{**fields, **changes})).eval()


@pytest.fixture(scope="module")
def ae():
    return zoo.load(recipe.NAME)


@pytest.fixture(scope="module")
def stated():
    return zoo.load_config(recipe.NAME)["metrics"]


@pytest.fixture(scope="module")
def recomputed(ae):
    torch.set_num_threads(1)
    return recipe.evaluate(ae, timing=False)


def test_shapes_and_the_compression_ratio():
    c = AutoencoderConfig(in_channels=3, image_size=24, latent_channels=4, channels=(32, 64))
    assert c.factor == 4 and c.latent_shape == (4, 6, 6)
    assert 3 * 24 * 24 / math.prod(c.latent_shape) == 12
    assert AutoencoderConfig(channels=(32,)).latent_shape == (4, 16, 16)
    ae = tiny()
    x = torch.rand(5, 3, 8, 8)
    z = ae.encode(x)
    assert z.shape == (5, 2, 2, 2) and ae.decode(z).shape == (5, 3, 8, 8)
    assert torch.equal(ae(x), ae.decode(ae.encode(x)))


def test_scaling_factor_scales_the_latent_only():
    ae = tiny()
    x = torch.rand(3, 3, 8, 8)
    plain = ae.encode(x)
    ae.config.scaling_factor = 0.25
    torch.testing.assert_close(ae.encode(x), 0.25 * plain)
    torch.testing.assert_close(ae.decode(ae.encode(x)), ae.decode_unscaled(plain))


def test_off_manifold_latents_decode_to_images():
    """What a diffusion model samples may lie far from any E(x): the decoder still returns pixels in [0, 1]."""
    ae = tiny()
    x = ae.decode(100 * torch.randn(4, 2, 2, 2))
    assert x.shape == (4, 3, 8, 8) and x.min() >= 0 and x.max() <= 1


def test_gradients_reach_the_encoder():
    ae = tiny().train()
    x = torch.rand(2, 3, 8, 8)
    torch.nn.functional.mse_loss(ae(x), x).backward()
    assert ae.encoder[0].weight.grad.abs().sum() > 0


def test_training_runs_and_sets_the_scaling_factor():
    model, history = recipe.train(steps=4, device="cpu", progress=False, n_train=32, batch_size=8)
    assert isinstance(model, Autoencoder) and not model.training and len(history["loss"]) == 4
    assert {"mse", "l2"} <= set(history.names)
    z = model.encode(recipe.training_images(32))
    assert z.std().item() == pytest.approx(1.0, abs=1e-4)


def test_training_is_seeded():
    a, _ = recipe.train(steps=2, device="cpu", progress=False, n_train=16, batch_size=4, seed=3)
    b, _ = recipe.train(steps=2, device="cpu", progress=False, n_train=16, batch_size=4, seed=3)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert a.config.scaling_factor == b.config.scaling_factor


# --- the shipped checkpoint ---------------------------------------------------------------------------------------

def test_checkpoint_is_small_and_f4(ae, stated):
    assert isinstance(ae, Autoencoder) and ae.config.latent_shape == (4, 8, 8)
    assert (zoo.zoo_dir() / f"{recipe.NAME}.safetensors").stat().st_size < 2_000_000
    assert stated["numbers_per_image"] / stated["numbers_per_latent"] == 12
    assert stated["train_cpu_seconds"] <= 10 * 60 and stated["threads"] == 1, "trains in <= 10 minutes on one core"
    assert stated["steps"] == recipe.STEPS and stated["command"].startswith("python -m vitlib.recipes.autoencoder")
    assert TIMED <= set(stated)


def test_stated_figures_match_recomputed_ones(recomputed, stated):
    for key, value in recomputed.items():
        if isinstance(value, dict):
            for attribute, figures in value.items():
                assert figures == stated[key][attribute], f"{key}/{attribute}"
        elif isinstance(value, float):
            assert value == pytest.approx(stated[key], abs=1e-5), key
        else:
            assert value == stated[key], key


def test_latents_have_unit_variance_on_training_renders(stated):
    assert stated["train_latent_std"] == pytest.approx(1.0, abs=1e-3)
    assert abs(stated["train_latent_mean"]) < 0.5


def test_the_judge_reads_reconstructions_as_it_reads_renders(stated):
    """Within 2 scenes of the real renders in every attribute, on test and held-out colour+shape pairs."""
    for split in ("test", "heldout"):
        assert stated[f"{split}_mse"] < 2e-3, split
        real, rec = stated[f"judged_{split}_renders"], stated[f"judged_{split}_reconstructions"]
        for attribute in ("color", "shape", "size", "position"):
            assert rec[attribute]["correct"] >= real[attribute]["correct"] - 2, (split, attribute)


# --- bad input ------------------------------------------------------------------------------------------------------

AE = tiny()
Z = torch.zeros(2, 2, 2, 2)

BAD = [
    (lambda: AE.encode(torch.rand(3, 8, 8)), ValueError, r"shape \(B, 3, 8, 8\).*got \(3, 8, 8\)"),
    (lambda: AE.encode(torch.rand(2, 1, 8, 8)), ValueError, r"\(B, 3, 8, 8\).*got \(2, 1, 8, 8\)"),
    (lambda: AE.encode(torch.rand(2, 3, 9, 9)), ValueError, r"\(B, 3, 8, 8\).*got \(2, 3, 9, 9\)"),
    (lambda: AE.encode(torch.rand(0, 3, 8, 8)), ValueError, r"B >= 1.*got \(0, 3, 8, 8\)"),
    (lambda: AE.encode(torch.full((1, 3, 8, 8), math.nan)), ValueError, "NaN"),
    (lambda: AE.encode(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), TypeError, r"float tensor.*torch\.uint8"),
    (lambda: AE.encode(torch.rand(1, 3, 8, 8, dtype=torch.float64)), TypeError, "float64.*float32"),
    (lambda: AE.encode(torch.rand(1, 3, 8, 8) * 2 - 1), ValueError, r"in \[0, 1\].*\(x \+ 1\) / 2"),
    (lambda: AE.encode([[0.0]]), TypeError, "float tensor.*list"),
    (lambda: AE.decode(torch.zeros(2, 4, 2, 2)), ValueError, r"\(B, 2, 2, 2\).*got \(2, 4, 2, 2\)"),
    (lambda: AE.decode(torch.zeros(2, 2, 4, 4)), ValueError, r"\(B, 2, 2, 2\).*got \(2, 2, 4, 4\)"),
    (lambda: AE.decode(torch.rand(1, 3, 8, 8)), ValueError, r"z must have shape \(B, 2, 2, 2\)"),
    (lambda: AE.decode(Z.long()), TypeError, r"z must be a float tensor.*torch\.int64"),
    (lambda: AE.decode(torch.full((1, 2, 2, 2), math.inf)), ValueError, "NaN or infinite"),
    (lambda: AE.decode(Z[:0]), ValueError, "B >= 1"),
    (lambda: AutoencoderConfig(channels=(0, 8)), ValueError, r"channels\[0\] must be a positive int, got 0"),
    (lambda: AutoencoderConfig(channels=(32, -64)), ValueError, r"channels\[1\] must be a positive int, got -64"),
    (lambda: AutoencoderConfig(channels=()), ValueError, "non-empty tuple"),
    (lambda: AutoencoderConfig(channels=32), ValueError, "non-empty tuple.*got 32"),
    (lambda: AutoencoderConfig(latent_channels=0), ValueError, "latent_channels must be a positive int, got 0"),
    (lambda: AutoencoderConfig(in_channels=-3), ValueError, "in_channels must be a positive int, got -3"),
    (lambda: AutoencoderConfig(image_size=26), ValueError, r"divisible by f = 2\^len\(channels\) = 4.*26"),
    (lambda: AutoencoderConfig(image_size=24, channels=(8, 8, 8, 8)), ValueError, "= 16, got image_size=24"),
    (lambda: AutoencoderConfig(channels=(32, 60)), ValueError, r"divisible by groups=8.*\(32, 60\)"),
    (lambda: AutoencoderConfig(scaling_factor=0.0), ValueError, "scaling_factor must be > 0.0, got 0.0"),
    (lambda: AutoencoderConfig(scaling_factor=math.nan), ValueError, "scaling_factor must be > 0.0, got nan"),
    (lambda: AutoencoderConfig(scaling_factor="1"), TypeError, "scaling_factor must be a real number, got str"),
    (lambda: AutoencoderConfig(latent_dim=4), TypeError, "latent_dim"),
    (lambda: Autoencoder({"image_size": 24}), TypeError, "AutoencoderConfig, got dict"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_inputs_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_config_fails_before_building(monkeypatch):
    """A wrong config raises in the config itself: no weight of a huge model is allocated first."""
    built = []
    monkeypatch.setattr(torch.nn.Conv2d, "__init__", lambda *a, **k: built.append(1))
    with pytest.raises(ValueError):
        Autoencoder(AutoencoderConfig(image_size=25, channels=(4096, 4096)))
    assert not built
