"""mmdetection 3.x checkpoints → tailseg weights.

Supported (what tailseg's cascade can express exactly at inference):
- `HybridTaskCascade` without a semantic head (mask information flow, interleaved): the same
  model; mmdetection 3.3's HTC masks are the last stage's alone (its `_mask_forward` keeps only
  the last head's output), so the converted config sets `model.roi.mask_merge=last`;
- `CascadeRCNN` with mask heads (Cascade Mask R-CNN): tailseg's stages with their residual
  convs set to zero (x + ReLU(0) = x: no information flow) and the stages' masks averaged, as
  mmdetection's `CascadeRoIHead.predict_mask` averages them (`mask_merge=mean`);
- `MaskRCNN`: one stage; its class-specific box regressor (mmdetection's default) sets
  `model.roi.class_agnostic_boxes=false`;
- backbones: ResNet (pytorch style) and mmdetection's `SwinTransformer` (its PatchMerging
  orders the 4C channels channel-major, as `nn.Unfold` does: permuted here to the official
  layout tailseg uses); FPN; RPN (sigmoid, or softmax turned into its exact sigmoid form);
  Shared2FC box heads with Linear or NormedLinear classifiers and softmax or Seesaw outputs
  (the same channel layouts); FCN / HTC mask heads (a class-agnostic `conv_logits` is tiled
  over the classes); the MaskIoU head (Mask Scoring).

Refused with the key named: a semantic head, `NormedConv2d` mask logits (seen in the
checkpoint's `meta.cfg`), absolute position embeddings, extra FPN convs, caffe-style or other
backbones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from tailseg.config import Config
from tailseg.convert.keymap import Report, Rule, apply_rules, fit_model
from tailseg.errors import ConversionError

BN = r"(weight|bias|running_mean|running_var)"


def unfold_to_concat_weight(w: Tensor) -> Tensor:
    """PatchMerging reduction (2C, 4C): mmdetection's input channel 4c + k (k = 2·ky + kx, the
    2×2 offset, as `nn.Unfold` orders them) → the official order j·C + c with j over the
    offsets (0,0), (1,0), (0,1), (1,1) (x0, x1, x2, x3), i.e. k = [0, 2, 1, 3][j]."""
    out_c, four_c = w.shape
    c = four_c // 4
    return w.reshape(out_c, c, 4)[:, :, [0, 2, 1, 3]].permute(0, 2, 1).reshape(out_c, four_c)


def unfold_to_concat_vector(v: Tensor) -> Tensor:
    """PatchMerging norm (4C,): the same channel permutation as the reduction's inputs."""
    c = v.shape[0] // 4
    return v.reshape(c, 4)[:, [0, 2, 1, 3]].t().reshape(4 * c)


def _seesaw_counts(v: Tensor) -> Tensor:
    return v[:-1].to(torch.float64)  # cum_samples (C + 1,): the last is the background's


RESNET = [  # pytorch style: torchvision's names, as tailseg's
    Rule(r"backbone\..*num_batches_tracked", None, "BatchNorm step counters (unused)"),
    Rule(r"backbone\.conv1\.weight", r"backbone.conv1.weight"),
    Rule(rf"backbone\.bn1\.{BN}", r"backbone.bn1.\1"),
    Rule(r"backbone\.(layer\d\.\d+\.conv\d\.weight)", r"backbone.\1"),
    Rule(rf"backbone\.(layer\d\.\d+\.bn\d)\.{BN}", r"backbone.\1.\2"),
    Rule(rf"backbone\.(layer\d\.0\.downsample\.[01])\.(weight|{BN[1:-1]})", r"backbone.\1.\2"),
]
SWIN = [  # mmdetection 3.x's own Swin layout
    Rule(r"backbone\.patch_embed\.projection\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    Rule(r"backbone\.patch_embed\.norm\.(weight|bias)", r"backbone.patch_embed.norm.\1"),
    Rule(
        r"backbone\.stages\.\d+\.blocks\.\d+\.attn\.w_msa\.relative_position_index",
        None,
        "relative position index (a constant tailseg builds with the same formula)",
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\."
        r"(relative_position_bias_table|qkv\.weight|qkv\.bias|proj\.weight|proj\.bias)",
        r"backbone.layers.\1.blocks.\2.attn.\3",
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.(norm[12])\.(weight|bias)",
        r"backbone.layers.\1.blocks.\2.\3.\4",
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)",
        r"backbone.layers.\1.blocks.\2.mlp.fc1.\3",
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.ffn\.layers\.1\.(weight|bias)",
        r"backbone.layers.\1.blocks.\2.mlp.fc2.\3",
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.downsample\.reduction\.weight",
        r"backbone.layers.\1.downsample.reduction.weight",
        "PatchMerging input channels: nn.Unfold order → official order",
        unfold_to_concat_weight,
    ),
    Rule(
        r"backbone\.stages\.(\d+)\.downsample\.norm\.(weight|bias)",
        r"backbone.layers.\1.downsample.norm.\2",
        "PatchMerging norm channels: nn.Unfold order → official order",
        unfold_to_concat_vector,
    ),
    Rule(r"backbone\.norm(\d)\.(weight|bias)", r"backbone.norm\1.\2"),
]
HEADS = [  # the same names in mmdetection 2.x and 3.x
    Rule(r"neck\.lateral_convs\.([0-3])\.conv\.(weight|bias)", r"neck.lateral.\1.\2"),
    Rule(r"neck\.fpn_convs\.([0-3])\.conv\.(weight|bias)", r"neck.output.\1.\2"),
    Rule(r"rpn_head\.rpn_conv\.(weight|bias)", r"rpn.head.conv.\1"),
    Rule(r"rpn_head\.rpn_cls\.(weight|bias)", r"rpn.head.objectness.\1"),
    Rule(r"rpn_head\.rpn_reg\.(weight|bias)", r"rpn.head.deltas.\1"),
    # box heads (stage index added for Mask R-CNN before the rules run)
    Rule(r"roi_head\.bbox_head\.(\d+)\.shared_fcs\.0\.(weight|bias)", r"box_heads.\1.fc1.\2"),
    Rule(r"roi_head\.bbox_head\.(\d+)\.shared_fcs\.1\.(weight|bias)", r"box_heads.\1.fc2.\2"),
    Rule(r"roi_head\.bbox_head\.(\d+)\.fc_cls\.(weight|bias)", r"box_heads.\1.cls.\2"),
    Rule(r"roi_head\.bbox_head\.(\d+)\.fc_reg\.(weight|bias)", r"box_heads.\1.reg.\2"),
    Rule(
        r"roi_head\.bbox_head\.(\d+)\.loss_cls\.cum_samples",
        r"cls_states.\1.counts",
        "Seesaw's class counts without the background's",
        _seesaw_counts,
    ),
    # mask heads
    Rule(
        r"roi_head\.mask_head\.(\d+)\.convs\.(\d+)\.conv\.(weight|bias)",
        r"mask_heads.\1.convs.\2.\3",
    ),
    Rule(r"roi_head\.mask_head\.(\d+)\.upsample\.(weight|bias)", r"mask_heads.\1.upsample.\2"),
    Rule(r"roi_head\.mask_head\.(\d+)\.conv_logits\.(weight|bias)", r"mask_heads.\1.logits.\2"),
    Rule(
        r"roi_head\.mask_head\.0\.conv_res\.conv\.(weight|bias)",
        None,
        "the first stage's conv_res (never run: no earlier stage feeds it)",
    ),
    Rule(r"roi_head\.mask_head\.(\d+)\.conv_res\.conv\.(weight|bias)", r"mask_heads.\1.res.\2"),
    # Mask Scoring
    Rule(r"roi_head\.mask_iou_head\.convs\.(\d+)\.(weight|bias)", r"mask_iou_head.convs.\1.\2"),
    Rule(r"roi_head\.mask_iou_head\.fcs\.0\.(weight|bias)", r"mask_iou_head.fc1.\1"),
    Rule(r"roi_head\.mask_iou_head\.fcs\.1\.(weight|bias)", r"mask_iou_head.fc2.\1"),
    Rule(r"roi_head\.mask_iou_head\.fc_mask_iou\.(weight|bias)", r"mask_iou_head.iou.\1"),
]

REFUSED = [  # (pattern, why): keys that change the computation tailseg would do without them
    (r"roi_head\.semantic_head\..*", "HTC's semantic head (its features enter every RoI)"),
    (r"backbone\.(cb_modules\.\d\.)?absolute_pos_embed", "Swin's absolute position embedding"),
    (r"neck\.fpn_convs\.[4-9]\..*", "FPN extra convolutions (add_extra_convs)"),
    (r"roi_head\.bbox_head\.(\d+\.)?shared_convs\..*", "a box head with shared convs (4conv-1fc)"),
    (r"roi_head\.mask_head\.(\d+\.)?stage_instance_logits\..*", "SimpleRefineMaskHead"),
]
FAMILIES = {
    "mmdet": "mmdetection 3.x",
    "cbnetv2": "CBNetV2 (mmdetection 2.x)",
    "refinemask": "RefineMask (mmdetection 2.x)",
}


def flavour(keys: Mapping[str, object], lossy: bool = False) -> str:
    """'htc', 'cascade' or 'mask_rcnn', from the keys of an mmdetection state dict; a part
    tailseg's model does not have is an error unless `lossy`."""
    for key in keys if not lossy else ():
        for pattern, why in REFUSED:
            if re.fullmatch(pattern, key):
                raise ConversionError(
                    f"{key}: {why} is not supported by tailseg's model (--lossy imports the "
                    "rest, e.g. to fine-tune; its outputs then differ from the source's)"
                )
    if "roi_head.bbox_head.0.fc_cls.weight" in keys:
        flow = any(re.fullmatch(r"roi_head\.mask_head\.[1-9]\d*\.conv_res\..*", k) for k in keys)
        return "htc" if flow else "cascade"
    if "roi_head.bbox_head.fc_cls.weight" in keys:
        return "mask_rcnn"
    raise ConversionError(
        "no roi_head.bbox_head.*.fc_cls.weight: not an mmdetection two-stage detector with a "
        "Shared2FC box head"
    )


def convert_mmdet(
    state: Mapping[str, Tensor],
    cfg: Config,
    model_state: Mapping[str, Tensor],
    source: str,
    lossy: bool = False,
    labels: list[int] | None = None,
) -> tuple[dict[str, Tensor], Report]:
    """An mmdetection `state_dict` (3.x, or CBNetV2's / RefineMask's 2.x) → a state dict of the
    model `cfg` builds (`model_state` is that model's own). Raises ConversionError naming the
    key that does not fit. `lossy`: parts tailseg's model lacks (`REFUSED`) are dropped and
    tailseg tensors without a source keep the model's initialisation — a start for
    fine-tuning, whose outputs differ from the source's (the report lists both). `labels`:
    tailseg's label i is the source's label labels[i] (see `class_order`; None: the same)."""
    from tailseg.convert import mmdet2

    family = mmdet2.family(list(state))
    try:
        kind = flavour(state, lossy)
    except ConversionError as e:
        raise ConversionError(f"{source}: {e}") from None
    report = Report(source, f"{FAMILIES[family]} {kind}")
    state, names = _prepare(dict(state), kind, cfg, report)
    if labels is not None and labels != sorted(labels):
        state = _permute_classes(state, labels)
        report.notes.append("class channels reordered: the json lists categories out of id order")
    rules = mmdet2.CBNET if family == "cbnetv2" else RESNET + SWIN
    rules = rules + HEADS + (mmdet2.REFINEMASK if family == "refinemask" else [])
    if lossy:
        state = _drop_foreign_box_heads(state, report, names)
        lost = " (lossy import: the source's outputs depend on it)"
        rules = [Rule(pattern, None, why + lost) for pattern, why in REFUSED] + rules
    converted, origin = apply_rules(state, rules, report, names)
    fills = {}
    if kind == "cascade":
        fills[r"mask_heads\.\d+\.res\.(weight|bias)"] = (
            "zero residual convs: Cascade Mask R-CNN has no mask information flow",
            torch.zeros_like,
        )
    fills[r"cls_states\.\d+\.counts"] = ("Seesaw class counts start at zero", torch.zeros_like)
    if lossy:
        fills[r".*"] = ("no source: the model's own initialisation (lossy import)", torch.clone)
    out = fit_model(converted, origin, model_state, report, fills, hint=lambda k: _hint(k, cfg))
    return out, report


def class_order(ids_in_file_order: list[int]) -> list[int]:
    """tailseg numbers a json's categories by ascending id, mmdetection in the json's order:
    tailseg label i is mmdetection label `class_order(ids)[i]`."""
    return sorted(range(len(ids_in_file_order)), key=lambda j: ids_in_file_order[j])


def _permute_classes(state: dict[str, Tensor], labels: list[int]) -> dict[str, Tensor]:
    """Every class channel in tailseg's label order (background/objectness channels, after the
    C classes, stay last): classifier rows, per-class box deltas, Seesaw's counts, mask logits,
    MaskIoU outputs, RefineMask's stage logits."""
    c = len(labels)
    idx = torch.tensor(labels)
    out = {}
    for k, v in state.items():
        if re.fullmatch(
            r"roi_head\.bbox_head\.\d+\.(fc_cls\.(weight|bias)|loss_cls\.cum_samples)", k
        ):
            v = torch.cat([v[idx], v[c:]])
        elif (
            re.fullmatch(r"roi_head\.bbox_head\.\d+\.fc_reg\.(weight|bias)", k) and len(v) == 4 * c
        ):
            v = v.reshape(c, 4, *v.shape[1:])[idx].reshape(v.shape)
        elif (
            re.fullmatch(
                r"roi_head\.(mask_head\.\d+\.(conv_logits|stages\.\d\.instance_logits)"
                r"|mask_iou_head\.fc_mask_iou)\.(weight|bias)",
                k,
            )
            and len(v) == c
        ):
            v = v[idx]
        out[k] = v
    return out


def _drop_foreign_box_heads(
    state: dict[str, Tensor], report: Report, names: dict[str, str]
) -> dict[str, Tensor]:
    """Lossy import: every tensor of a box head with shared convs (its fc takes conv features
    tailseg's 2-fc head does not compute) is dropped."""
    stages = {
        m[1] for k in state if (m := re.match(r"roi_head\.bbox_head\.(\d+)\.shared_convs", k))
    }
    out = {}
    for k, v in state.items():
        m = re.match(r"roi_head\.bbox_head\.(\d+)\.", k)
        if m and m[1] in stages:
            report.dropped.append((names.get(k, k), "a box head with shared convs (lossy import)"))
        else:
            out[k] = v
    return out


def settings(
    state: Mapping[str, Tensor], lossy: bool = False, version: str | None = None
) -> dict[str, str]:
    """The config values that reproduce mmdetection's inference with these weights: how the
    stages' masks merge (mmdetection 3.x's HTC keeps the last stage's; 2.x's HTC — CBNetV2's
    too — and every Cascade Mask R-CNN average them) and whether the box heads regress one box
    per class. `version`: the mmdetection that wrote the checkpoint (its `meta`), if known."""
    from tailseg.convert import mmdet2

    kind = flavour(state, lossy)
    two = mmdet2.family(list(state)) != "mmdet" or (version or "").startswith(("1.", "2."))
    reg = [
        v
        for k, v in state.items()
        if re.fullmatch(r"roi_head\.bbox_head\.(\d+\.)?fc_reg\.weight", k)
    ]
    agnostic = all(v.shape[0] == 4 for v in reg)
    return {
        "model.roi.mask_merge": "last" if kind == "htc" and not two else "mean",
        "model.roi.class_agnostic_boxes": "true" if agnostic else "false",
    }


def _prepare(
    state: dict[str, Tensor], kind: str, cfg: Config, report: Report
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Source-side fixes before the renames — Mask R-CNN's heads get stage index 0, a softmax
    RPN its sigmoid form, class-agnostic mask logits are tiled — and the file's own names of
    the keys renamed here."""
    names: dict[str, str] = {}
    if kind == "mask_rcnn":
        renamed = {}
        for k, v in state.items():
            new = re.sub(r"^roi_head\.(bbox_head|mask_head)\.", r"roi_head.\1.0.", k)
            renamed[new] = v
            if new != k:
                names[new] = k
        state = renamed
    cls_w, reg_w = state.get("rpn_head.rpn_cls.weight"), state.get("rpn_head.rpn_reg.weight")
    if cls_w is not None and reg_w is not None and cls_w.shape[0] == 2 * (reg_w.shape[0] // 4):
        for part in ("weight", "bias"):  # softmax over (fg, bg) per anchor = sigmoid(fg − bg)
            v = state[f"rpn_head.rpn_cls.{part}"]
            state[f"rpn_head.rpn_cls.{part}"] = v[0::2] - v[1::2]
        report.notes.append("softmax RPN: objectness = fg − bg logits (the same probabilities)")
    c = cfg.model.num_classes
    for key in [k for k in state if k.endswith("conv_logits.weight")]:
        if state[key].shape[0] == 1 and c > 1:  # class_agnostic=True
            bias = key.removesuffix("weight") + "bias"
            state[key] = state[key].expand(c, *state[key].shape[1:]).clone()
            state[bias] = state[bias].expand(c).clone()
            report.notes.append(f"{key}: class-agnostic mask logits tiled over {c} classes")
    return state, names


def _hint(key: str, cfg: Config) -> str:
    """Which config key decides a tailseg tensor's shape."""
    m = cfg.model
    for prefix, what in (
        ("backbone.", f"model.backbone ({m.backbone.kind})"),
        ("neck.", f"model.fpn_channels={m.fpn_channels}"),
        ("rpn.", "model.rpn.anchor_ratios / anchor_scales"),
        (
            "box_heads.",
            f"model.num_classes={m.num_classes}, roi.fc_dim, roi.cls_loss, "
            f"roi.class_agnostic_boxes={m.roi.class_agnostic_boxes}",
        ),
        ("mask_heads.", "model.roi.mask_conv_dim / mask_num_convs / mask_heads, num_classes"),
        ("mask_iou_head.", "model.roi.mask_scoring"),
        ("cls_states.", "model.roi.cls_loss"),
    ):
        if key.startswith(prefix):
            return f" (set by the config's {what})"
    return ""
