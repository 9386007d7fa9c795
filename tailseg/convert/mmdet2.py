"""The mmdetection 2.x checkpoints of the report's components: CBNetV2 (VDIGPKU/CBNetV2,
mmdetection 2.14) and RefineMask (zhanggang001/RefineMask, mmdetection 2.3).

Their necks, RPNs, box and mask heads have mmdetection 3.x's names (`mmdet.HEADS`); what
differs is here:
- CBNetV2's composite backbone: `backbone.cb_modules.0` is tailseg's assistant, `.1` the lead
  (official Swin names, or mmdetection's ResNet names = torchvision's); its Swin links
  `cb_linears.i.j` (j ≥ 1, level i + j into stage i; `cb_linears.i.0` is an identity without
  weights) are tailseg's `links.i.(j − 1)`, its ResNet links `cb_linears.i.j.{0,1}` (conv,
  BatchNorm) tailseg's `links.i.j.{0,1}`; the lead ResNet's unused stem norm is dropped;
- RefineMask's head: `instance_convs` → `convs`, the fusion stages' `semantic_transform_in/out`
  → `semantic_in/out`, `instance_logits` → `mask`, `fuse_conv.0` → `fuse_in`,
  `fuse_conv.1.dilation_conv_k` → `branches.(k − 1)`, `merge_conv` → `merge`,
  `fuse_transform_out` → `fuse_out`, `final_instance_logits` → `final` (class-agnostic: the
  LVIS checkpoints; COCO's class-specific 112×112 logits do not fit and are named).

CBNetV2's released HTC checkpoints carry HTC's semantic head and 4-conv box heads, which
tailseg's model does not have: they convert only with `lossy=True` (see `convert_mmdet`).
"""

from __future__ import annotations

import re

from tailseg.convert.keymap import Rule

BN = r"(weight|bias|running_mean|running_var)"


def _link(m: re.Match) -> str:
    return f"backbone.links.{m[1]}.{int(m[2]) - 1}.{m[3]}"


def _branch(m: re.Match) -> str:
    return f"mask_heads.{m[1]}.stages.{m[2]}.branches.{int(m[3]) - 1}.{m[4]}"


CBNET = [
    Rule(
        r"backbone\.cb_modules\.[01]\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index",
        None,
        "relative position index (a constant tailseg builds with the same formula)",
    ),
    Rule(r"backbone\.cb_modules\.[01]\..*attn_mask", None, "shift mask (rebuilt per input size)"),
    Rule(r"backbone\.cb_modules\.1\.bn1\..*", None, "the lead ResNet's stem norm (never run)"),
    Rule(r"backbone\.cb_modules\..*num_batches_tracked", None, "BatchNorm step counters (unused)"),
    Rule(r"backbone\.cb_modules\.0\.(.+)", r"backbone.assistant.\1"),
    Rule(r"backbone\.cb_modules\.1\.(.+)", r"backbone.lead.\1"),
    Rule(r"backbone\.cb_linears\.(\d)\.(\d)\.(weight|bias)", _link),  # Swin: conv with bias
    Rule(
        rf"backbone\.cb_linears\.(\d)\.(\d)\.([01])\.(weight|num_batches_tracked|{BN[1:-1]})",
        r"backbone.links.\1.\2.\3.\4",
    ),  # ResNet: conv, BatchNorm
]

REFINEMASK = [
    Rule(
        r"roi_head\.mask_head\.(\d+)\.instance_convs\.(\d+)\.conv\.(weight|bias)",
        r"mask_heads.\1.convs.\2.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.semantic_convs\.(\d+)\.conv\.(weight|bias)",
        r"mask_heads.\1.semantic_convs.\2.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.semantic_logits\.(weight|bias)",
        r"mask_heads.\1.semantic_logits.\2",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.semantic_transform_in\.(weight|bias)",
        r"mask_heads.\1.stages.\2.semantic_in.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.semantic_transform_out\.(weight|bias)",
        r"mask_heads.\1.stages.\2.semantic_out.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.instance_logits\.(weight|bias)",
        r"mask_heads.\1.stages.\2.mask.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.fuse_conv\.0\.(weight|bias)",
        r"mask_heads.\1.stages.\2.fuse_in.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.fuse_conv\.1\.dilation_conv_(\d)\.conv\."
        r"(weight|bias)",
        _branch,
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.fuse_conv\.1\.merge_conv\.conv\.(weight|bias)",
        r"mask_heads.\1.stages.\2.merge.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.stages\.(\d)\.fuse_transform_out\.(weight|bias)",
        r"mask_heads.\1.stages.\2.fuse_out.\3",
    ),
    Rule(
        r"roi_head\.mask_head\.(\d+)\.final_instance_logits\.(weight|bias)",
        r"mask_heads.\1.final.\2",
    ),
]


def family(keys: list[str]) -> str:
    """'cbnetv2', 'refinemask' or 'mmdet' (mmdetection 3.x names)."""
    if any(k.startswith("backbone.cb_modules.") for k in keys):
        return "cbnetv2"
    if any(
        re.fullmatch(r"roi_head\.mask_head\.(\d+\.)?stages\.\d\.fuse_conv\..*", k) for k in keys
    ):
        return "refinemask"
    return "mmdet"
