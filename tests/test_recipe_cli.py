"""vitlib.recipes.cli: the options every recipe shares, and the report that prints metrics and saves to the zoo."""

import pytest

from vitlib import zoo
from vitlib.recipes import cli
from vitlib.transformer import GPT, GPTConfig


def test_parser_has_the_shared_options():
    args = cli.parser("d", "some-model", steps=12).parse_args([])
    assert (args.steps, args.seed, args.save) == (12, 0, False)
    args = cli.parser("d", "some-model", steps=12).parse_args(["--steps", "3", "--seed", "7", "--save"])
    assert (args.steps, args.seed, args.save) == (3, 7, True)
    with pytest.raises(SystemExit):
        cli.parser("d", "some-model", steps=12).parse_args(["--unknown"])


def test_report_prints_and_saves_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITLIB_ZOO", str(tmp_path))
    model = GPT(GPTConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_len=4))
    cli.report(model, {"loss": 1.5}, "tiny", save=False)
    assert "{'loss': 1.5}" in capsys.readouterr().out and not list(tmp_path.iterdir())
    cli.report(model, {"loss": 1.5}, "tiny", save=True)
    assert "wrote" in capsys.readouterr().out
    assert zoo.verify("tiny", directory=tmp_path) == {"loss": 1.5}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cli.report(model, {"loss": 1.0}, "tiny", save=True)
    cli.report(model, {"loss": 1.0}, "tiny", save=True, overwrite=True)
    assert zoo.verify("tiny", directory=tmp_path) == {"loss": 1.0}
    assert cli.parser("d", "m", steps=1).parse_args(["--save", "--overwrite"]).overwrite



RECIPES = ["gpt_shapes", "clip_shapes", "classifier_shapes", "vlp_shapes", "shapes_judge", "t2i_l2_baseline",
           "autoencoder_shapes", "t2i_shapes", "t2i_shapes_latent", "vqa_shapes",
           "captioner_shapes", "captioner_shapes_pooled", "vlm_shapes"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_follows_the_protocol(name):
    import importlib
    import inspect

    recipe = importlib.import_module(f"vitlib.recipes.{name}")
    assert isinstance(recipe.NAME, str) and recipe.NAME in zoo.available()
    for fn in ("world", "config", "train", "evaluate", "main"):
        assert callable(getattr(recipe, fn, None)), f"{name} has no {fn}()"
    params = inspect.signature(recipe.train).parameters
    assert {"steps", "seed", "device", "progress"} <= set(params), f"{name}.train lacks a shared option"


def test_reevaluate_rewrites_the_metrics_and_keeps_steps_and_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITLIB_ZOO", str(tmp_path))
    model = GPT(GPTConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_len=4))
    zoo.save(model, "tiny", model.config, {"accuracy": 0.1, "steps": 7, "train_seconds": 3.5})

    class Recipe:
        NAME = "tiny"

        @staticmethod
        def evaluate(m):
            return {"accuracy": 0.9}

    assert cli.reevaluate(Recipe) == {"accuracy": 0.9, "steps": 7, "train_seconds": 3.5}
    assert zoo.verify("tiny", directory=tmp_path) == {"accuracy": 0.9, "steps": 7, "train_seconds": 3.5}
    assert "wrote" in capsys.readouterr().out


def test_train_and_evaluate_adds_steps_and_time():
    class Recipe:
        @staticmethod
        def train(steps, **options):
            return "model", {"loss": [1.0] * steps}

        @staticmethod
        def evaluate(model):
            return {"accuracy": 0.5}

    model, history, metrics = cli.train_and_evaluate(Recipe, steps=3)
    assert model == "model" and metrics["steps"] == 3 and metrics["accuracy"] == 0.5
    assert metrics["train_seconds"] >= 0
