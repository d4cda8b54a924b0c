"""vitlib.vlm: the splice and the feature selection by hand; the vision tower's hidden states are the ViT's; the cache
gives a full pass's logits; the decoding loops drive a bound VLM (a hand-written greedy loop, beam search per
image); answer and chat batch exactly and grow the history; the tower stays frozen; the loss skips IGNORE_INDEX; a
tiny VLM learns to name a colour; loading a CLIP and a GPT; the zoo round trip; the bad-input table."""

import random

import pytest
import torch

from vitlib import zoo
from vitlib.clip import CLIP, CLIPConfig
from vitlib.constants import IGNORE_INDEX
from vitlib.data import ShapesWorld, one_object_scenes, to_tensor
from vitlib.decoding import beam_search, greedy
from vitlib.instruct import collate_chats, encode_chat, prompt_ids
from vitlib.transformer import GPT, GPTConfig
from vitlib.vlm import VLM, VLMConfig, answer, chat, next_token_loss, select_features, splice
from vitlib.data.language import tokenizer as shapes_tokenizer
from tiny_models import spread

TOKENIZER = shapes_tokenizer()
V, IMAGE = TOKENIZER.vocab_size, TOKENIZER.image_id   # 80 ids; <image> = 4


def _config(**overrides) -> VLMConfig:
    return VLMConfig(**(dict(vocab_size=V, max_len=48, d_model=32, n_layers=2, n_heads=4, vision_width=16,
                             vision_layers=2, vision_heads=2) | overrides))


def _model(seed=0, **overrides) -> VLM:
    torch.manual_seed(seed)
    model = VLM(_config(**overrides)).eval()
    spread(model)
    return model


def _images(B=2, seed=1) -> torch.Tensor:
    return torch.rand(B, 3, 24, 24, generator=torch.Generator().manual_seed(seed))


def _prompts(B=2, n_image=9) -> torch.Tensor:
    """[<bos> user : <image> x n_image, two different words per row, assistant :] (B, n_image + 7)."""
    return torch.stack([prompt_ids([], f"<image> {w}", TOKENIZER, n_image)
                        for w in ("red circle", "blue square", "a cross")[:B]])


def test_splice_replaces_the_image_positions_in_order_row_by_row():
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(2, 8, 5, generator=g, requires_grad=True)
    features = torch.randn(2, 3, 5, generator=g, requires_grad=True)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 1:4] = True
    mask[1, [0, 4, 7]] = True                     # not contiguous
    out = splice(embeds, features, mask)
    expected = embeds.detach().clone()
    for b in range(2):
        for k, t in enumerate(mask[b].nonzero()[:, 0].tolist()):
            expected[b, t] = features[b, k]
    assert torch.equal(out, expected)
    out.sum().backward()                          # the gradient reaches the features, not the replaced words
    assert torch.equal(features.grad, torch.ones_like(features))
    assert torch.equal(embeds.grad, (~mask)[..., None].float().expand(-1, -1, 5))


def test_select_features_picks_the_hidden_state_and_drops_the_class_token():
    states = [torch.randn(2, 10, 4) for _ in range(3)]   # embeddings, layer 1, layer 2
    assert torch.equal(select_features(states, -1, "patch"), states[2][:, 1:])
    assert torch.equal(select_features(tuple(states), -2, "full"), states[1])
    assert torch.equal(select_features(states, 0, "patch"), states[0][:, 1:])
    assert select_features(states, -3, "full").shape == (2, 10, 4)


def test_vision_states_are_the_vits_before_its_final_norm():
    model, images = _model(), _images()
    states = model.vision_states(images)
    assert len(states) == 3 and all(z.shape == (2, 10, 16) for z in states)
    _, tokens = model.vision(images, return_tokens=True)
    torch.testing.assert_close(model.vision.encoder.norm(states[-1]), tokens, atol=1e-6, rtol=0)
    assert not torch.allclose(states[-1], states[-2])


@pytest.mark.parametrize("select, pool, n", [("patch", "none", 9), ("full", "none", 10), ("patch", "mean", 1),
                                             ("full", "mean", 1)])
def test_image_features_select_pool_and_project(select, pool, n):
    model, images = _model(feature_layer=-2, feature_select=select, image_pool=pool), _images()
    assert model.config.n_image_tokens == n
    V_img = select_features(model.vision_states(images), -2, select)
    V_img = V_img.mean(dim=1, keepdim=True) if pool == "mean" else V_img
    torch.testing.assert_close(model.image_features(images), model.projector(V_img), atol=0, rtol=0)
    prompt = _prompts(n_image=n)
    assert model(prompt, images).shape == (2, prompt.shape[1], V)


def test_cached_logits_equal_a_full_pass_over_a_whole_generation():
    model, images, prompt = _model(), _images(), _prompts()
    seq = greedy(model.bind(images), prompt, 12)                      # (2, T + 12)
    full = model(seq, images)                                         # (2, T + 12, V)
    T = prompt.shape[1]
    logits, past = model(seq[:, :T], images, use_cache=True)
    steps = [logits]
    for t in range(T, seq.shape[1]):
        logits, past = model(seq[:, t:t + 1], past_kv=past, use_cache=True)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert past[0][0].shape == (2, 4, seq.shape[1], 8)
    assert not torch.allclose(full[0, -1], full[1, -1], atol=1e-3), "the rows differ"


def test_bind_drives_greedy_as_a_hand_written_loop_and_beam_search_per_image():
    model, images, prompt = _model(), _images(), _prompts()
    ids = prompt
    for _ in range(8):                                                # the loop greedy stands for
        logits = model(ids, images)[:, -1]
        logits[:, IMAGE] = float("-inf")                              # a bound VLM never emits <image>
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    model.train()                                                     # decoding runs in eval mode, then restores
    assert torch.equal(greedy(model.bind(images), prompt, 8), ids)
    assert torch.equal(greedy(model.bind(images), prompt, 8, use_cache=False), ids)
    assert model.training and not model.vision.training
    model.eval()
    seqs, scores = beam_search(model.bind(images), prompt, 6, num_beams=3)
    for b in range(2):                                                # R = K B rows: each image's beams alone
        seq_b, score_b = beam_search(model.bind(images[b:b + 1]), prompt[b:b + 1], 6, num_beams=3)
        assert torch.equal(seqs[b:b + 1, :seq_b.shape[1]], seq_b)
        torch.testing.assert_close(scores[b:b + 1], score_b, atol=1e-5, rtol=0)
    assert not torch.equal(seqs[0, prompt.shape[1]:], seqs[1, prompt.shape[1]:]), "each row reads its own image"


def test_answer_batches_by_length_exactly_and_chat_grows_the_history():
    model, images = _model(), _images(3)
    questions = ["what color is the circle?", "how many objects are there?", "what shape is this?"]
    answers = answer(model, images, questions)                        # lengths 9, 10, 9 words: two groups
    assert len(answers) == 3 and all(isinstance(a, str) and not a.endswith(".") for a in answers)
    assert answers == [answer(model, images[i:i + 1], [q])[0] for i, q in enumerate(questions)]

    model = _model(max_len=96)
    reply, history = chat(model, images[0], "describe the image.", max_new_tokens=6)
    assert isinstance(reply, str) and reply and history == [
        {"role": "user", "content": "<image> describe the image."}, {"role": "assistant", "content": reply}]
    reply2, history2 = chat(model, images[0], "what color is the circle?", history, max_new_tokens=1000)  # cut
    assert isinstance(reply2, str) and len(history2) == 4 and history2[:2] == history
    assert history2[2] == {"role": "user", "content": "what color is the circle?"}   # no second <image>
    assert "<unk>" not in reply + reply2


def test_the_vision_tower_stays_frozen_and_in_eval_mode_while_the_rest_trains():
    model, images, prompt = _model(), _images(), _prompts()
    model.train()
    assert not model.vision.training and model.projector.training and model.lm.training
    assert not any(p.requires_grad for p in model.vision.parameters())
    before = {k: v.clone() for k, v in model.vision.state_dict().items()}
    labels = prompt.clone()
    loss, _ = model(prompt, images, labels=labels)
    loss.backward()
    torch.optim.AdamW(model.parameters(), lr=0.1).step()              # Adam skips parameters without a gradient
    assert all(p.grad is None for p in model.vision.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*model.projector.parameters(),
                                                                       *model.lm.parameters()])
    assert all(torch.equal(v, before[k]) for k, v in model.vision.state_dict().items())
    model.eval()
    assert not model.training and not model.projector.training


def test_the_loss_is_next_token_cross_entropy_over_the_labelled_positions():
    model, images, prompt = _model(), _images(), _prompts()
    ids = torch.cat([prompt, torch.tensor([[10, 5, 3], [12, 5, 3]])], dim=1)   # + "red . <eos>", "blue . <eos>"
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, -3:] = ids[:, -3:]
    loss, logits = model(ids, images, labels=labels)
    log_p = logits.log_softmax(-1)
    T = ids.shape[1]
    by_hand = -torch.stack([log_p[b, t - 1, ids[b, t]] for b in range(2) for t in range(T - 3, T)]).mean()
    torch.testing.assert_close(loss, by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(next_token_loss(logits, labels), loss, atol=0, rtol=0)
    assert torch.equal(model(ids, images), logits)


def test_a_tiny_vlm_learns_to_name_the_colour_of_a_one_object_image():
    world = ShapesWorld(image_size=24, max_objects=1, seed=0)
    train, val = one_object_scenes(world, "train"), one_object_scenes(world, "val")
    torch.manual_seed(0)
    model = VLM(VLMConfig(vocab_size=V, max_len=32, d_model=64, n_layers=1, n_heads=4))   # a random frozen tower
    N = model.config.n_image_tokens

    def chats(scenes):
        return [[{"role": "user", "content": f"<image> what color is the {s.objects[0].shape}?"},
                 {"role": "assistant", "content": f"{s.objects[0].color}."}] for s in scenes]

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, losses = random.Random(0), []
    model.train()
    for _ in range(200):
        scenes = rng.sample(train, 32)
        batch = collate_chats([encode_chat(c, TOKENIZER, N) for c in chats(scenes)], TOKENIZER.pad_id)
        loss, _ = model(batch["input_ids"], to_tensor(world.render_batch(scenes)), labels=batch["labels"],
                        attention_mask=batch["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    predictions = answer(model, to_tensor(world.render_batch(val)), [c[0]["content"][8:] for c in chats(val)])
    truth = [s.objects[0].color for s in val]
    accuracy = sum(p == t for p, t in zip(predictions, truth)) / len(val)
    constant = max(truth.count(c) for c in set(truth)) / len(val)
    print(f"colour accuracy {accuracy:.3f} on {len(val)} held-out scenes; constant predictor {constant:.3f}; "
          f"loss {losses[0]:.2f} -> {sum(losses[-10:]) / 10:.3f}")
    assert accuracy >= 0.9 > constant + 0.5


def test_load_vision_and_load_lm_copy_a_clip_tower_and_a_gpt():
    model, images = _model(), _images()
    torch.manual_seed(3)
    clip = CLIP(CLIPConfig(vocab_size=V, vision_width=16, vision_layers=2, vision_heads=2))
    model.load_vision(clip)
    torch.testing.assert_close(model.vision.encoder.norm(model.vision_states(images)[-1])[:, 0], clip.vision(images),
                               atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in model.vision.parameters())
    gpt = GPT(model.config.gpt_config())
    model.load_lm(gpt)
    words = torch.tensor([[1, 10, 20, 30], [1, 11, 21, 31]])          # no image: the VLM is its LM
    torch.testing.assert_close(model(words), gpt(words), atol=0, rtol=0)


def test_zoo_round_trip(tmp_path):
    model, images, prompt = _model(feature_layer=-2, feature_select="full"), _images(), _prompts(n_image=10)
    zoo.save(model, tmp_path / "vlm", model.config)
    loaded = zoo.load(tmp_path / "vlm")
    assert type(loaded) is VLM and loaded.config == model.config
    assert not any(p.requires_grad for p in loaded.vision.parameters())
    torch.testing.assert_close(loaded(prompt, images), model(prompt, images), atol=0, rtol=0)


def _bad_cases():
    model, images, prompt = _model(), _images(), _prompts()
    emb, feats = torch.randn(2, 8, 5), torch.randn(2, 3, 5)
    two = torch.zeros(2, 8, dtype=torch.bool)
    two[:, :2] = True
    _, past = model(prompt, images, use_cache=True)
    states = [torch.randn(2, 10, 4)] * 3
    return [
        ("wrong image size", lambda: model(prompt, torch.rand(2, 3, 16, 16)), ValueError, "24x24"),
        ("float64 images", lambda: model(prompt, images.double()), TypeError, "dtype"),
        ("uint8 images", lambda: model(prompt, (images * 255).to(torch.uint8)), TypeError, "float"),
        ("images in [0, 255]", lambda: model(prompt, images * 255), ValueError, "[0, 1]"),
        ("NaN image", lambda: model(prompt, images.masked_fill(images > 0.5, float("nan"))), ValueError, "finite"),
        ("one image for two rows", lambda: model(prompt, images[:1]), ValueError, "2 row"),
        ("image tokens without images", lambda: model(prompt), ValueError, "no images"),
        ("images with past_kv", lambda: model(prompt[:, -1:], images, past_kv=past), ValueError, "past_kv"),
        ("image token after the first step", lambda: model(prompt[:, 4:5], past_kv=past), ValueError, "first step"),
        ("8 image tokens for 9", lambda: model(torch.cat([prompt[:, :3], prompt[:, 4:]], 1), images), ValueError,
         "8 image token positions"),
        ("empty prompt", lambda: model(prompt[:, :0], images), ValueError, "length >= 1"),
        ("float input_ids", lambda: model(prompt.float(), images), ValueError, "LongTensor"),
        ("labels of another shape", lambda: model(prompt, images, labels=prompt[:, 1:]), ValueError, "labels"),
        ("labels all ignored", lambda: model(prompt, images, labels=torch.full_like(prompt, IGNORE_INDEX)),
         ValueError, "ignore_index"),
        ("use_cache not a bool", lambda: model(prompt, images, use_cache=1), TypeError, "use_cache"),
        ("splice count mismatch", lambda: splice(emb, feats, two), ValueError, "2 image token positions but there "
         "are 3"),
        ("splice int mask", lambda: splice(emb, feats, two.long()), ValueError, "bool"),
        ("splice other width", lambda: splice(emb, torch.randn(2, 2, 4), two), ValueError, "(B, N, d)"),
        ("splice other dtype", lambda: splice(emb, feats.double(), two), TypeError, "dtype"),
        ("select layer out of range", lambda: select_features(states, 3), ValueError, "[-3, 2]"),
        ("select unknown strategy", lambda: select_features(states, -1, "default"), ValueError, "strategy"),
        ("select no states", lambda: select_features([], -1), ValueError, "non-empty"),
        ("select a tensor", lambda: select_features(states[0], -1), ValueError, "tuple"),
        ("unknown projector", lambda: _config(projector="conv"), ValueError, "projector"),
        ("unknown feature_select", lambda: _config(feature_select="default"), ValueError, "feature_select"),
        ("unknown image_pool", lambda: _config(image_pool="max"), ValueError, "image_pool"),
        ("feature_layer too high", lambda: _config(feature_layer=3), ValueError, "[-3, 2]"),
        ("feature_layer too low", lambda: _config(feature_layer=-4), ValueError, "[-3, 2]"),
        ("feature_layer a bool", lambda: _config(feature_layer=True), ValueError, "feature_layer"),
        ("image_token_id outside", lambda: _config(image_token_id=V), ValueError, "image_token_id"),
        ("max_len under the image", lambda: _config(max_len=9), ValueError, "max_len"),
        ("d_model not by n_heads", lambda: _config(d_model=30), ValueError, "n_heads"),
        ("patch not dividing image", lambda: _config(patch_size=7), ValueError, "patch_size"),
        ("a GPTConfig", lambda: VLM(GPTConfig(V, 32, 2, 4, 48)), TypeError, "VLMConfig"),
        ("bind to no images", lambda: model.bind(prompt), TypeError, "float"),
        ("bound rows not K per image", lambda: model.bind(images)(prompt[:1]), ValueError, "multiple"),
        ("load_vision of a GPT", lambda: model.load_vision(model.lm), TypeError, "CLIP"),
        ("load_vision of other sizes", lambda: model.load_vision(CLIP(CLIPConfig(vocab_size=V))), ValueError,
         "does not match"),
        ("load_lm of other sizes", lambda: model.load_lm(GPT(GPTConfig(V, 64, 2, 4, 48))), ValueError, "d_model"),
        ("answer one str", lambda: answer(model, images, "what color?"), TypeError, "questions"),
        ("answer too few questions", lambda: answer(model, images, ["what color is this?"]), ValueError, "1 row"),
        ("answer unknown word", lambda: answer(model, images, ["what colour?"] * 2), ValueError, "colour"),
        ("answer no model", lambda: answer(model.lm, images, ["what color?"] * 2), TypeError, "VLM"),
        ("answer max_new_tokens 0", lambda: answer(model, images, ["what color?"] * 2, max_new_tokens=0),
         ValueError, "max_new_tokens"),
        ("chat a batch", lambda: chat(model, images, "hello"), ValueError, "(3, H, W)"),
        ("chat half a history", lambda: chat(model, images[0], "what?", [{"role": "user", "content": "<image> a"}]),
         ValueError, "pairs"),
        ("chat message not str", lambda: chat(model, images[0], 3), TypeError, "message"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())), ids=[c[0] for c in _bad_cases()])
def test_bad_input_raises_a_clear_error(case):
    _, call, error, fragment = _bad_cases()[case]
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value), str(info.value)
