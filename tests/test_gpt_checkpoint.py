"""The shipped checkpoint gpt-shapes: it loads, and its stored metrics are what it measures today.

Validation perplexity is recomputed on freshly generated validation text (the recipe's own function, so the text is
the same) and must equal the stored value; samples drawn from <bos> must parse as ShapesWorld captions.
"""

import math

import pytest
import torch

from vitlib import zoo
from vitlib.data import ShapesWorld
from vitlib.lm import token_nll
from vitlib.metrics import parse_rate, perplexity
from vitlib.recipes import gpt_shapes
from vitlib.transformer import GPT


@pytest.fixture(scope="module")
def model():
    return zoo.load("gpt-shapes")


def test_checkpoint_loads_as_the_recipe_configures_it(model):
    assert isinstance(model, GPT) and not model.training
    assert model.config == gpt_shapes.config()
    assert set(zoo.load_config("gpt-shapes")["metrics"]) >= {"val_perplexity", "parse_rate"}


def test_validation_perplexity_matches_the_stored_value(model):
    stored = zoo.load_config("gpt-shapes")["metrics"]["val_perplexity"]
    measured = perplexity(token_nll(model, gpt_shapes.validation_seqs()))
    assert math.isclose(measured, stored, rel_tol=1e-4), (measured, stored)
    assert measured < 2.5


def test_sampled_captions_parse(model):
    stored = zoo.load_config("gpt-shapes")["metrics"]["parse_rate"]
    samples = gpt_shapes.sample_captions(model, gpt_shapes.N_SAMPLES, seed=0)
    rate = parse_rate(samples, ShapesWorld(seed=0).parse_caption)
    assert rate >= 0.95
    assert abs(rate - stored) <= 0.01, (rate, stored)  # the same seeded draws (a rare token may flip across CPUs)


def test_samples_are_varied_not_one_memorised_caption(model):
    samples = gpt_shapes.sample_captions(model, 100, seed=3)
    assert len(set(samples)) > 90


def test_greedy_generation_is_a_caption(model):
    tok = ShapesWorld().tokenizer
    out = model.generate(torch.tensor([[tok.bos_id]]), 40, eos_token_id=tok.eos_id)[0].tolist()
    text = tok.decode(out)
    assert tok.eos_id in out
    ShapesWorld().parse_caption(text, strict=True)


def test_fine_tuning_data_fits_its_requests():
    world = ShapesWorld(seed=0)
    tok = world.tokenizer
    for prompt, response in gpt_shapes.instruction_examples(30, "val"):
        request, caption = tok.decode(prompt), tok.decode(response)
        k = ["one object", "two objects", "three objects"].index(request.removeprefix("draw ").rstrip(".")) + 1
        assert len(world.parse_caption(caption, strict=True)) == k
        assert response[-1] == tok.eos_id and prompt[0] == tok.bos_id
    batch = gpt_shapes.qa_batch(gpt_shapes.instruction_examples(4, "train"))
    prompt, response = gpt_shapes.instruction_examples(4, "train")[0]
    labels = batch["labels"][0]
    assert (labels[:len(prompt)] == -100).all() and labels[len(prompt):len(prompt) + len(response)].tolist() == response


def test_the_fine_tuning_request_is_new_to_the_model(model):
    assert gpt_shapes.instruction_accuracy(model, n_per_request=8) < 0.3
    assert not any(" draw " in f" {doc} " for doc in gpt_shapes.texts(2000, "train"))


def test_the_recipe_refuses_too_few_documents_instead_of_looping():
    seqs = gpt_shapes.encode(gpt_shapes.texts(20, "train"))
    with pytest.raises(ValueError, match="at least batch_size=32 documents, got 20"):
        gpt_shapes.length_batches(seqs, 32, 5, torch.Generator().manual_seed(0))
    batches = gpt_shapes.length_batches(seqs, 8, 5, torch.Generator().manual_seed(0))   # fewer than 16 x 8: works
    assert len(batches) == 5 and all(b["input_ids"].shape[0] == 8 for b in batches)
