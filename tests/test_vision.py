"""vitlib.vision: the patch embedding equals a strided Conv2d, the ViT equals transformers' ViTModel, the CNN has the
shapes and checks it promises (chapter 04)."""

import pytest
import torch
from torch import nn

from vitlib.vision import CNNConfig, CNNEncoder, PatchEmbedding, ViT, ViTConfig, patchify

ATOL = 1e-6


def images(B=2, C=3, H=16, W=16, seed=0):
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(seed))


def test_patchify_cuts_row_by_row_and_flattens_pixels_then_channels():
    x = images(B=1, C=3, H=8, W=12)
    p = patchify(x, 4)                                   # (1, 2 * 3, 4 * 4 * 3)
    assert p.shape == (1, 6, 48)
    torch.testing.assert_close(p[0, 0], x[0, :, :4, :4].permute(1, 2, 0).reshape(-1), atol=0, rtol=0)
    torch.testing.assert_close(p[0, 4], x[0, :, 4:8, 4:8].permute(1, 2, 0).reshape(-1), atol=0, rtol=0)
    assert p[0, 0, :3].tolist() == x[0, :, 0, 0].tolist(), "the first three values are pixel (0, 0)'s channels"


@pytest.mark.parametrize("image_size,patch_size,channels,d_model", [(16, 4, 3, 8), (32, 8, 1, 5), (12, 3, 4, 16)])
def test_patch_embedding_equals_strided_conv(image_size, patch_size, channels, d_model):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, d_model, kernel_size=patch_size, stride=patch_size)
    ours = PatchEmbedding.from_conv2d(conv, image_size)
    x = images(B=3, C=channels, H=image_size, W=image_size)
    ref = conv(x).flatten(2).transpose(1, 2)             # (B, d_model, h, w) -> (B, N, d_model)
    torch.testing.assert_close(ours(x), ref, atol=ATOL, rtol=0)
    assert ours.n_patches == (image_size // patch_size) ** 2


def test_patch_embedding_rejects_bad_input():
    emb = PatchEmbedding(16, 4, 3, 8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got \(2, 1, 16, 16\)"):
        emb(images(C=1))
    with pytest.raises(ValueError, match="must be 16x16, got 20x20"):
        emb(images(H=20, W=20))
    with pytest.raises(TypeError, match="float tensor"):
        emb(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="not divisible by patch_size=5"):
        PatchEmbedding(16, 5, 3, 8)
    with pytest.raises(ValueError, match="not divisible by patch_size=3"):
        patchify(images(), 3)
    with pytest.raises(ValueError, match="kernel_size = stride"):
        PatchEmbedding.from_conv2d(nn.Conv2d(3, 8, 4, stride=2), 16)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_cnn_encoder_shapes(norm):
    cnn = CNNEncoder(CNNConfig(channels=(4, 8, 16), norm=norm))
    v, fmap = cnn(images(H=32, W=32), return_feature_map=True)
    assert v.shape == (2, 16) and fmap.shape == (2, 16, 8, 8), "first stage keeps the size, each later one halves it"
    torch.testing.assert_close(v, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(cnn(images(H=32, W=32)), v)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        cnn(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        CNNConfig(norm="layer")


def test_vit_shapes_and_checks():
    vit = ViT(ViTConfig(image_size=16, patch_size=4, d_model=16, n_layers=1, n_heads=2))
    v, tokens = vit(images(), return_tokens=True)
    assert v.shape == (2, 16) and tokens.shape == (2, 17, 16)
    maps = vit.attention_maps(images())
    assert maps.shape == (1, 2, 17, 17)
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, 2, 17))
    assert not vit.patch_embed._forward_hooks and not any(b.norm1._forward_hooks for b in vit.encoder.blocks)
    with pytest.raises(ValueError, match="must be 16x16, got 32x32"):
        vit(images(H=32, W=32))
    with pytest.raises(ValueError, match=r"image_size=30 is not divisible by patch_size=4"):
        ViTConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        ViTConfig(d_model=10, n_heads=4)
    with pytest.raises(TypeError, match="ViTConfig"):
        ViT(CNNConfig())
    with pytest.raises(TypeError, match="pre_norm must be a bool"):
        ViTConfig(pre_norm=1)


def test_vit_pre_norm_normalises_the_input_tokens():
    vit = ViT(ViTConfig(image_size=16, patch_size=4, d_model=16, n_layers=1, n_heads=2, pre_norm=True)).eval()
    seen = []
    vit.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    vit(images())
    z0 = seen[0]                                                      # (B, 1 + N, d_model): what the encoder got
    torch.testing.assert_close(z0.mean(-1), torch.zeros(2, 17), atol=1e-5, rtol=0)
    # unit variance up to eps = 1e-5 inside the root (the class token starts near zero, so skip it)
    torch.testing.assert_close(z0[:, 1:].var(-1, unbiased=False), torch.ones(2, 16), atol=1e-3, rtol=0)


@pytest.mark.parametrize("bad", [4.0, 0, -4, True])
def test_a_bad_patch_size_is_refused_before_einops_sees_it(bad):
    """einops caches the pattern it builds from the sizes: patchify(x, 4.0) once made every later ViT forward
    (patch_size=4, and 4.0 == 4 as a cache key) fail with a TypeError deep in einops."""
    with pytest.raises(ValueError, match=rf"patch_size must be a positive int, got {bad!r}"):
        patchify(images(), bad)
    vit = ViT(ViTConfig(image_size=16, patch_size=4, d_model=16, n_layers=1, n_heads=2)).eval()
    assert vit(images()).shape == (2, 16)
    assert patchify(images(), 4).shape == (2, 16, 48)


def test_encoders_name_the_dtype_and_device_they_expected():
    cnn = CNNEncoder(CNNConfig(channels=(8, 16)))
    with pytest.raises(TypeError, match=r"images has dtype torch.float64 but the module's weights are torch.float32"):
        cnn(images().double())
    with pytest.raises(ValueError, match="images is on meta but the module's weights are on cpu"):
        cnn(images().to("meta"))
    with pytest.raises(ValueError, match=r"norm_eps must be > 0.0, got 0"):
        ViTConfig(norm_eps=0)


def test_cnn_receptive_field_is_17_pixels_with_positions_8_apart():
    """r = 1 + sum_l (k_l - 1) prod_{i<l} s_i = 1 + 2 * (1 + 1 + 2 + 4): measured with a gradient per map row."""
    cnn = CNNEncoder(CNNConfig()).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    _, fmap = cnn(x, return_feature_map=True)                     # (2, 64, 4, 4)
    for i, (first, last) in enumerate([(-8, 8), (0, 16), (8, 24), (16, 32)]):
        grad, = torch.autograd.grad(fmap[:, :, i].sum(), x, retain_graph=True)
        rows = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
        assert (rows.min().item(), rows.max().item()) == (max(first, 0), min(last, 31))


def test_circular_padding_makes_the_cnn_blind_to_shifts_by_its_total_stride():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    circular = CNNEncoder(CNNConfig(padding_mode="circular")).eval()
    with torch.no_grad():
        torch.testing.assert_close(circular(torch.roll(x, (8, -16), dims=(-2, -1))), circular(x), atol=1e-5, rtol=0)
        zeros = CNNEncoder(CNNConfig()).eval()
        assert (zeros(torch.roll(x, 8, dims=-1)) - zeros(x)).abs().max() > 1e-3, "zero padding shows the border"
    with pytest.raises(ValueError, match="unknown padding_mode 'reflect'; allowed: zeros, circular"):
        CNNConfig(padding_mode="reflect")
