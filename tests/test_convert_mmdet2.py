"""CBNetV2's and RefineMask's (mmdetection 2.x) checkpoints: every key mapped or dropped with a
reason, on state dicts with their exact key names and shapes (tests/mmdet2_keys.py) — their
code needs mmcv-full 1.x, which does not build against torch 2.14, so no outputs are compared."""

from __future__ import annotations

import pytest
import torch

from tailseg.cli.common import resolve_config
from tailseg.config import load_config
from tailseg.convert.mmdet import convert_mmdet, settings
from tailseg.errors import ConversionError
from tailseg.models.build import build_model
from tests.mmdet2_keys import fake_cbresnet_backbone, fake_cbswin_htc, fake_refinemask_maskrcnn

K = 8
CB_SWIN = [
    f"model.num_classes={K}", "model.backbone.kind=swin", "model.backbone.composite=true",
    "model.backbone.embed_dim=32", "model.backbone.depths=[2,2,2,2]",
    "model.backbone.num_heads=[1,2,4,8]", "model.backbone.window_size=7",
    "model.fpn_channels=64", "model.roi.fc_dim=256",
    "model.roi.mask_conv_dim=64", "model.roi.mask_num_convs=4",
    "model.roi.mask_heads=[htc,htc,htc]", "model.roi.classifier=linear",
    "model.roi.cls_loss=softmax", "model.roi.mask_scoring=false",
]  # fmt: skip
REFINEMASK = [
    f"model.num_classes={K}", "model.backbone.depth=14", "model.backbone.base_width=16",
    "model.fpn_channels=64", "model.roi.fc_dim=256",
    "model.roi.mask_conv_dim=64", "model.roi.classifier=linear", "model.roi.cls_loss=softmax",
    "model.roi.mask_scoring=false", "model.roi.stage_ious=[0.5]", "model.roi.stage_weights=[1.0]",
    "model.roi.stage_stds=[[0.1,0.1,0.2,0.2]]", "model.roi.mask_heads=[refinemask]",
]  # fmt: skip


def state_of(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Distinct values per tensor, so that a swapped mapping shows; integer buffers as such."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in shapes.items():
        if k.endswith(("num_batches_tracked", "relative_position_index")):
            out[k] = torch.zeros(shape, dtype=torch.int64)
        else:
            out[k] = torch.rand(shape, generator=g) + (1.0 if k.endswith("running_var") else 0.0)
    return out


def convert(state: dict, overrides: list[str], lossy: bool = False):
    implied = [f"{k}={v}" for k, v in settings(state, lossy).items()]
    cfg = load_config(str(resolve_config("tiny")), [*implied, *overrides])
    model = build_model(cfg.model, cfg.infer)
    weights, report = convert_mmdet(state, cfg, model.state_dict(), "src.pth", lossy)
    model.load_state_dict(weights)  # strict: every tensor filled, right shapes
    return weights, report


def test_cbswin_htc_maps_every_key() -> None:
    state = state_of(fake_cbswin_htc(K=K, semantic=False))
    weights, report = convert(state, CB_SWIN)
    assert report.flavour == "CBNetV2 (mmdetection 2.x) htc"
    assert settings(state)["model.roi.mask_merge"] == "mean"  # 2.x's HTC averages the stages
    assert len(report.mapped) + len(report.dropped) == len(state)
    assert {why for _, why in report.dropped} == {
        "relative position index (a constant tailseg builds with the same formula)"
    }
    assert report.filled == []
    # level i + j feeds stage i through links.i.(j − 1); cb_modules.0 / .1: assistant / lead
    assert torch.equal(
        weights["backbone.links.1.1.weight"], state["backbone.cb_linears.1.2.weight"]
    )
    assert torch.equal(weights["backbone.links.0.2.bias"], state["backbone.cb_linears.0.3.bias"])
    lead = "backbone.lead.layers.2.blocks.1.attn.qkv.weight"
    assert torch.equal(
        weights[lead], state["backbone.cb_modules.1.layers.2.blocks.1.attn.qkv.weight"]
    )
    assert "backbone.lead.patch_embed.proj.weight" not in weights  # the lead has no stem
    assert torch.equal(
        weights["mask_heads.2.res.weight"], state["roi_head.mask_head.2.conv_res.conv.weight"]
    )


def test_cbswin_semantic_head_is_refused_or_dropped_when_lossy() -> None:
    state = state_of(fake_cbswin_htc(K=K, semantic=True))
    with pytest.raises(ConversionError, match=r"roi_head\.semantic_head\..*semantic head.*--lossy"):
        convert(state, CB_SWIN)
    _, report = convert(state, CB_SWIN, lossy=True)
    semantic = [k for k, why in report.dropped if "semantic head" in why]
    assert len(semantic) == 22 and all(
        "lossy" in why for _, why in report.dropped if "semantic" in why
    )


def test_4conv_box_heads_are_refused_or_initialised_when_lossy() -> None:
    state = state_of(fake_cbswin_htc(K=K, semantic=False, box="4conv1f"))
    with pytest.raises(ConversionError, match=r"shared_convs.*4conv-1fc"):
        convert(state, CB_SWIN)
    _, report = convert(state, CB_SWIN, lossy=True)
    assert {k for k, _ in report.filled} == {
        f"box_heads.{s}.{p}.{w}" for s in range(3) for p in ("fc1", "fc2", "cls", "reg")
        for w in ("weight", "bias")
    }  # fmt: skip
    assert not any(k.startswith("roi_head.bbox_head") for k, *_ in report.mapped)


def test_cbresnet_backbone_keys() -> None:
    """The repository's CB-ResNet checkpoint is a Faster R-CNN: backbone, FPN, RPN, box head;
    its mask heads come from the model (lossy)."""
    shapes = fake_cbresnet_backbone(depth=14, w=16)
    from tests.mmdet2_keys import _fpn_rpn

    _fpn_rpn([64, 128, 256, 512], 64, shapes)
    for part, shape in (("fc_cls", (K + 1, 256)), ("fc_reg", (4 * K, 256))):
        shapes[f"roi_head.bbox_head.{part}.weight"], shapes[f"roi_head.bbox_head.{part}.bias"] = (
            shape,
            shape[:1],
        )
    shapes["roi_head.bbox_head.shared_fcs.0.weight"] = (256, 64 * 49)
    shapes["roi_head.bbox_head.shared_fcs.0.bias"] = (256,)
    shapes["roi_head.bbox_head.shared_fcs.1.weight"] = (256, 256)
    shapes["roi_head.bbox_head.shared_fcs.1.bias"] = (256,)
    state = state_of(shapes)
    overrides = [*REFINEMASK[:-1], "model.roi.mask_heads=[htc]", "model.backbone.composite=true"]
    weights, report = convert(state, overrides, lossy=True)
    assert {k.split(".")[1] for k, _ in report.filled} == {"0"}  # mask_heads.0.* only
    assert all(k.startswith("mask_heads.0.") for k, _ in report.filled)
    assert torch.equal(
        weights["backbone.links.2.1.1.running_var"], state["backbone.cb_linears.2.1.1.running_var"]
    )
    dropped = {k for k, why in report.dropped if "stem norm" in why}
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    assert dropped == {f"backbone.cb_modules.1.bn1.{p}" for p in norm}


def test_refinemask_maskrcnn_maps_every_key() -> None:
    state = state_of(fake_refinemask_maskrcnn(depth=14, w=16, K=K, last_K=1))
    weights, report = convert(state, REFINEMASK)
    assert report.flavour == "RefineMask (mmdetection 2.x) mask_rcnn"
    assert report.filled == [] and len(report.mapped) + len(report.dropped) == len(state)
    src = "roi_head.mask_head.stages.1.fuse_conv.1.dilation_conv_3.conv.weight"
    assert torch.equal(weights["mask_heads.0.stages.1.branches.2.weight"], state[src])
    assert weights["box_heads.0.reg.weight"].shape == (4 * K, 256)  # one box per class


def test_refinemask_class_specific_final_logits_are_named() -> None:
    state = state_of(fake_refinemask_maskrcnn(depth=14, w=16, K=K, last_K=K))
    with pytest.raises(ConversionError, match=r"final_instance_logits\.weight \(8, 8, 1, 1\)"):
        convert(state, REFINEMASK)
