"""vitlib.hf.pretrained: a real checkpoint when it can be had, one clear line and None when it cannot (tests run with
HF_HUB_OFFLINE=1, so the Hub is never asked)."""

import pytest
import torch

from vitlib.hf import from_hf_gpt2, pretrained


@pytest.fixture
def hub_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name, kind", [("gpt2", "gpt2"), ("openai/clip-vit-base-patch32", "clip"),
                                        ("no-such-user/no-such-model", "gpt2")])
def test_offline_it_says_so_and_skips(hub_off, capsys, name, kind):
    assert pretrained(name, kind) is None
    line = capsys.readouterr().out.strip()
    assert line == f"skipped, {name} not loaded: HF_HUB_OFFLINE=1, no local copy" and len(line) <= 88


def test_a_checkpoint_on_disk_loads_and_converts(hub_off, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = Tokenizer(models.BPE())
    words.pre_tokenizer = pre_tokenizers.ByteLevel()
    words.train_from_iterator(["a red circle at the top left", "a blue square in the center"],
                              trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"]))
    PreTrainedTokenizerFast(tokenizer_object=words, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=words.get_vocab_size(), n_positions=32, n_embd=32, n_layer=2,
                               n_head=4)).save_pretrained(tmp_path)
    model, tokenizer = pretrained(str(tmp_path), "gpt2")
    ids = tokenizer("a red square", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(from_hf_gpt2(model)(ids), model(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, kind, error, match", [
    ("gpt2", "bert", ValueError, "unknown kind 'bert'; allowed: gpt2, clip"),
    ("", "gpt2", TypeError, "name must be a Hub model id"),
    (None, "clip", TypeError, "name must be a Hub model id"),
])
def test_bad_input_is_named(name, kind, error, match):
    with pytest.raises(error, match=match):
        pretrained(name, kind)
