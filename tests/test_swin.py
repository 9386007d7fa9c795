"""Swin: official-checkpoint import, equality with timm's Swin (a test-only reference), sizes.

Reference numbers: parameter counts of the Swin paper (Liu et al., 2021, Table 1, ImageNet
classifiers with a 1,000-class head): T 28M, S 50M, B 88M, L 197M.
"""

from __future__ import annotations

import pytest
import torch

from tailseg.models.backbones.swin import (
    SwinTransformer,
    load_official_swin,
    relative_position_index,
)

VARIANTS = {  # embed_dim, depths, heads, published parameters (millions)
    "T": (96, (2, 2, 6, 2), (3, 6, 12, 24), 28),
    "S": (96, (2, 2, 18, 2), (3, 6, 12, 24), 50),
    "B": (128, (2, 2, 18, 2), (4, 8, 16, 32), 88),
    "L": (192, (2, 2, 18, 2), (6, 12, 24, 48), 197),
}


def official_checkpoint(model: SwinTransformer, classes: int = 1000) -> dict[str, torch.Tensor]:
    """What a microsoft/Swin-Transformer classification checkpoint's `model` dict holds."""
    sd = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("norm")}
    c = model.out_channels[-1]
    sd["norm.weight"], sd["norm.bias"] = torch.rand(c), torch.rand(c)
    sd["head.weight"], sd["head.bias"] = torch.rand(classes, c), torch.rand(classes)
    for name, m in model.named_modules():
        if name.endswith(".attn"):
            sd[f"{name}.relative_position_index"] = relative_position_index(m.window_size)
        if name.endswith(("blocks.1", "blocks.3")):
            sd[f"{name}.attn_mask"] = torch.zeros(4, 49, 49)
    return sd


def tiny_swin(**kw: object) -> SwinTransformer:
    torch.manual_seed(0)
    return SwinTransformer(embed_dim=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), **kw)


def test_import_keeps_every_weight_and_drops_the_rest() -> None:
    src = tiny_swin()
    ckpt = official_checkpoint(src)
    dst = SwinTransformer(embed_dim=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24))
    report = load_official_swin(dst, ckpt)
    assert sorted(report["missing"]) == sorted(
        f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")
    )
    for k, v in src.state_dict().items():
        if not k.startswith("norm"):
            assert torch.equal(dst.state_dict()[k], v), k


def test_window_change_resizes_the_bias_tables() -> None:
    ckpt = official_checkpoint(tiny_swin(window_size=7))
    dst = SwinTransformer(
        embed_dim=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=12
    )
    load_official_swin(dst, ckpt)
    table = dst.layers[0].blocks[0].attn.relative_position_bias_table
    assert table.shape == (23 * 23, 3)
    src = ckpt["layers.0.blocks.0.attn.relative_position_bias_table"]
    assert torch.allclose(table.mean(), src.mean(), atol=0.05)  # a smooth resampling


def test_incompatible_checkpoint_is_reported() -> None:
    ckpt = official_checkpoint(tiny_swin())
    del ckpt["layers.1.blocks.0.attn.qkv.weight"]
    with pytest.raises(KeyError, match=r"missing \['layers.1.blocks.0.attn.qkv.weight'\]"):
        load_official_swin(tiny_swin(), ckpt)


@pytest.mark.slow
def test_features_equal_timm_swin_with_the_same_weights() -> None:
    timm = pytest.importorskip("timm")
    from timm.models.swin_transformer import checkpoint_filter_fn

    # timm's classifier drops the shift where a map is no larger than the window (7×7 at
    # 224 px); the detection variant keeps it. At 448 px every map is larger: same computation.
    # float64: two implementations of one function agree to ~1e-15 on every CPU (in float32
    # their different kernels and op orders differ by ~1e-6, a margin that varies by CPU)
    ours = SwinTransformer(drop_path=0.0).eval().double()  # Swin-T, window 7
    ref = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=448)
    ref.eval()
    ckpt = official_checkpoint(ours)
    ref.load_state_dict(checkpoint_filter_fn(ckpt, ref))
    ref.double()
    x = torch.randn(1, 3, 448, 448, dtype=torch.float64)
    with torch.no_grad():
        got = ours.forward_stages(x)
        y = ref.patch_embed(x)  # (B, H, W, C)
        for i, layer in enumerate(ref.layers):  # timm merges patches at a stage's start
            y = layer(y)
            torch.testing.assert_close(got[i], y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_counts_match_the_paper(name: str) -> None:
    dim, depths, heads, published = VARIANTS[name]
    with torch.device("meta"):
        model = SwinTransformer(dim, depths, heads)
    c = model.out_channels[-1]
    backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("norm"))
    classifier = 2 * c + c * 1000 + 1000  # final norm + 1,000-class head
    assert abs((backbone + classifier) / 1e6 - published) / published < 0.015


def test_any_input_size_and_frozen_stages() -> None:
    model = tiny_swin(frozen_stages=1)
    feats = model(torch.randn(2, 3, 75, 101))
    assert [tuple(f.shape) for f in feats] == [
        (2, 48, 19, 26),
        (2, 96, 10, 13),
        (2, 192, 5, 7),
        (2, 384, 3, 4),
    ]
    frozen = {
        n.split(".")[0] + "." + n.split(".")[1]
        for n, p in model.named_parameters()
        if not p.requires_grad
    }
    assert frozen == {
        "patch_embed.proj",
        "patch_embed.norm",
        "layers.0",
        "norm0.weight",
        "norm0.bias",
    }


def test_shifted_windows_mask_only_across_regions() -> None:
    stage = tiny_swin().layers[0]
    mask = stage.shift_mask(14, 14, torch.device("cpu"))  # 2×2 windows of 7×7
    assert mask.shape == (4, 49, 49)
    assert (mask[0] == 0).all()  # the top-left window holds one region only
    assert (mask[3] == -100).any() and (mask[3].diagonal() == 0).all()
