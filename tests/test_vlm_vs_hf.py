"""vitlib.vlm against transformers' LLaVA: a tiny LlavaForConditionalGeneration (CLIP vision tower, Llama text
model), built offline, gives the logits and the loss that its pieces give when joined by hand with vitlib's
select_features, Projector("mlp"), splice and next_token_loss -- for vision_feature_layer -2 and -1 and both
feature select strategies ("default" drops the class token: vitlib's "patch")."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "LlavaForConditionalGeneration"):
    pytest.skip("this transformers has no LlavaForConditionalGeneration", allow_module_level=True)

from vitlib.constants import IGNORE_INDEX  # noqa: E402
from vitlib.fusion import Projector  # noqa: E402
from vitlib.vlm import next_token_loss, select_features, splice  # noqa: E402
from tiny_models import spread  # noqa: E402

IMAGE_ID, V, D_TEXT, WIDTH, S = 4, 40, 32, 32, 9   # 24x24 images in 8x8 patches: S = 9 patches + a class token
ATOL = 1e-5


def _llava(layer: int, strategy: str):
    torch.manual_seed(0)
    vision = transformers.CLIPVisionConfig(image_size=24, patch_size=8, hidden_size=WIDTH, intermediate_size=64,
                                           num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu")
    text = transformers.LlamaConfig(vocab_size=V, hidden_size=D_TEXT, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                    pad_token_id=0)
    n_image = S + (strategy == "full")
    config = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_id=IMAGE_ID,
                                      image_seq_length=n_image, projector_hidden_act="gelu",
                                      vision_feature_layer=layer, vision_feature_select_strategy=strategy)
    model = transformers.LlavaForConditionalGeneration(config).eval()
    spread(model, 0.05)
    return model, n_image


def _inputs(n_image: int, B: int = 2, T_words: int = 7):
    """Rows [<bos>, <image> x n_image, words...] with labels on the words only; rows differ in their words."""
    g = torch.Generator().manual_seed(1)
    words = torch.randint(IMAGE_ID + 1, V, (B, T_words), generator=g)
    ids = torch.cat([torch.ones(B, 1, dtype=torch.long), torch.full((B, n_image), IMAGE_ID), words], dim=1)
    labels = torch.cat([torch.full((B, 1 + n_image), IGNORE_INDEX), words], dim=1)
    labels[0, -2] = IGNORE_INDEX   # an ignored word inside the answer, too
    pixel_values = torch.rand(B, 3, 24, 24, generator=g) * 2 - 1
    return ids, labels, pixel_values


@pytest.mark.parametrize("layer", [-2, -1])
@pytest.mark.parametrize("strategy", ["default", "full"])
def test_llava_equals_vitlib_pieces(layer, strategy):
    model, n_image = _llava(layer, strategy)
    ids, labels, pixel_values = _inputs(n_image)
    with torch.no_grad():
        ref = model(input_ids=ids, pixel_values=pixel_values, labels=labels)

        hidden = model.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states   # 3 x (B, 10, w)
        V_img = select_features(hidden, layer, "patch" if strategy == "default" else "full")      # (B, N, w)
        projector = Projector(WIDTH, D_TEXT, "mlp")
        theirs = model.model.multi_modal_projector
        projector.net[0].load_state_dict(theirs.linear_1.state_dict())
        projector.net[2].load_state_dict(theirs.linear_2.state_dict())
        H = projector(V_img)                                                                      # (B, N, d)
        embeds = splice(model.get_input_embeddings()(ids), H, ids == IMAGE_ID)                   # (B, T, d)
        h = model.model.language_model(inputs_embeds=embeds).last_hidden_state                   # a black box
        logits = model.lm_head(h)                                                                 # (B, T, V)
        loss = next_token_loss(logits, labels)

    assert V_img.shape == (2, n_image, WIDTH)
    torch.testing.assert_close(logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(loss, ref.loss, atol=ATOL, rtol=0)
    # the check can fail: the other hidden state, or the class token kept/dropped, changes the logits
    wrong = select_features(hidden, -1 if layer == -2 else -2, "patch" if strategy == "default" else "full")
    with torch.no_grad():
        wrong_logits = model.lm_head(model.model.language_model(
            inputs_embeds=splice(model.get_input_embeddings()(ids), projector(wrong), ids == IMAGE_ID)
        ).last_hidden_state)
    assert (wrong_logits - ref.logits).abs().max() > 1e-3


def test_vlm_feeds_its_language_model_what_llava_feeds_its_own():
    """A VLM whose vision tower comes from a vitlib CLIP (load_vision), and a LLaVA with that CLIP exported
    (vitlib.hf.to_hf_clip), the VLM's projector and token embedding: the same image features, and the same
    spliced input embeddings reach each language model (the GPT and the Llama differ beyond them)."""
    from vitlib.clip import CLIP, CLIPConfig
    from vitlib.hf.clip import to_hf_clip
    from vitlib.vlm import VLM, VLMConfig

    torch.manual_seed(0)
    clip = CLIP(CLIPConfig(vocab_size=V, vision_width=WIDTH, vision_layers=2, vision_heads=4)).eval()
    spread(clip, 0.05)
    hf_vision = to_hf_clip(clip).vision_model
    # -3: the embeddings z_0 (transformers would read vision_feature_layer=0 as output_hidden_states=False)
    for layer, select in ((-2, "patch"), (-1, "full"), (-3, "patch")):
        vlm = VLM(VLMConfig(vocab_size=V, max_len=40, d_model=D_TEXT, n_layers=1, n_heads=4, vision_width=WIDTH,
                            vision_layers=2, feature_layer=layer, feature_select=select)).eval()
        vlm.load_vision(clip)
        config = transformers.LlavaConfig(
            vision_config=hf_vision.config.to_dict(), image_token_id=IMAGE_ID, projector_hidden_act="gelu",
            image_seq_length=vlm.config.n_image_tokens, vision_feature_layer=layer,
            vision_feature_select_strategy="default" if select == "patch" else "full",
            text_config=transformers.LlamaConfig(vocab_size=V, hidden_size=D_TEXT, intermediate_size=64,
                                                 num_hidden_layers=1, num_attention_heads=4))
        llava = transformers.LlavaForConditionalGeneration(config).eval()
        llava.model.vision_tower.load_state_dict(hf_vision.state_dict())
        theirs = llava.model.multi_modal_projector
        theirs.linear_1.load_state_dict(vlm.projector.net[0].state_dict())
        theirs.linear_2.load_state_dict(vlm.projector.net[2].state_dict())
        llava.get_input_embeddings().load_state_dict(vlm.lm.transformer.token_emb.state_dict())

        ids, _, _ = _inputs(vlm.config.n_image_tokens)
        images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(2))
        seen = {}
        hooks = [m.register_forward_pre_hook(lambda m, a, kw, key=key: seen.update({key: kw["inputs_embeds"]}),
                                             with_kwargs=True)
                 for key, m in (("ours", vlm.lm), ("theirs", llava.model.language_model))]
        with torch.no_grad():
            ours = vlm.image_features(images)                                              # (B, N, d)
            ref = torch.stack(llava.get_image_features(pixel_values=images).pooler_output)  # (B, N, d)
            vlm(ids, images)
            llava(input_ids=ids, pixel_values=images)
        for h in hooks:
            h.remove()
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(seen["ours"], seen["theirs"], atol=ATOL, rtol=0)
        assert (seen["ours"][:, 1:1 + vlm.config.n_image_tokens] - ours).abs().max() == 0   # the image sits there
