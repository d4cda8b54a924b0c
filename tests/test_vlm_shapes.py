"""vitlib.recipes.vlm_shapes (chapter 11's assistant): the model starts from clip-shapes' tower and gpt-shapes' LM
(its 64 learned positions kept), chats are cut to fit, batches carry loss only on the answers, stage 1 moves only
the projector, and a short run of both stages lowers the loss."""

import pytest
import torch

from vitlib import zoo
from vitlib.constants import IGNORE_INDEX
from vitlib.recipes import vlm_shapes as recipe


def test_build_starts_from_the_course_models():
    model = recipe.build()
    clip, gpt = zoo.load(recipe.CLIP_NAME), zoo.load(recipe.LM_NAME)
    for name, p in clip.vision.state_dict().items():
        assert torch.equal(model.vision.state_dict()[name], p), name
    ours, theirs = model.lm.state_dict(), gpt.state_dict()
    for name, p in theirs.items():
        if name.endswith("pos_emb.weight"):
            assert torch.equal(ours[name][:len(p)], p) and ours[name].shape[0] == recipe.MAX_LEN
        else:
            assert torch.equal(ours[name], p), name
    assert model.config.n_image_tokens == 9 and recipe.world().bias_pairs


def test_fit_drops_whole_exchanges_until_the_chat_fits():
    w = recipe.world()
    scene = next(s for s in w.scenes(50, "train") if len(s) == 3)
    turns = [{"role": "user", "content": "<image> describe the image."},
             {"role": "assistant", "content": w.caption(scene)}]
    turns += [{"role": "user", "content": "how many objects are there?"},
              {"role": "assistant", "content": "three."}] * 6
    short = recipe.fit(turns, 9)
    assert short == turns[:len(short)] and len(short) % 2 == 0 and 2 <= len(short) < len(turns)
    assert recipe.fit(short, 9) == short
    with pytest.raises(ValueError, match="does not fit max_len=20"):
        recipe.fit(turns, 9, max_len=20)


def test_batches_carry_loss_only_on_answers():
    scenes, images = recipe.scenes_and_images("train", 64)
    tok = recipe.world().tokenizer
    for stage in (1, 2):
        batch = next(recipe.batches(stage, scenes, images, 9, 16, torch.Generator().manual_seed(0), 0))
        ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
        assert ids.shape[1] <= recipe.MAX_LEN and batch["images"].shape == (16, 3, 24, 24)
        assert ((ids == tok.image_id).sum(1) == 9).all()
        assert (labels[ids == tok.image_id] == IGNORE_INDEX).all() and (labels[~mask] == IGNORE_INDEX).all()
        assert ((labels != IGNORE_INDEX).sum(1) > 0).all()


def test_stage_one_moves_only_the_projector_and_both_stages_learn():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = recipe.build()
    model, history = recipe.train(steps=25, stage1_steps=15, n_train=256, batch_size=16, progress=False)
    assert len(history["loss"]) == 40 and history["stage1_steps"] == 15
    assert sum(history["loss"][-5:]) < sum(history["loss"][:5])
    for name, p in start.vision.state_dict().items():
        assert torch.equal(model.vision.state_dict()[name], p), "the vision tower is frozen"
    lm_only, _ = recipe.train(steps=0, stage1_steps=5, n_train=256, batch_size=16, progress=False)
    for name, p in start.lm.state_dict().items():
        assert torch.equal(lm_only.lm.state_dict()[name], p), f"stage 1 changed the LM's {name}"
    assert not torch.equal(lm_only.projector.state_dict()["net.0.weight"], start.projector.state_dict()["net.0.weight"])
