"""`tailseg model CONFIG [key=value ...]`: what a config builds, before paying for a GPU run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tailseg.cli.common import load_run_config

if TYPE_CHECKING:
    from torch import nn


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="parameter counts of the model a config builds")
    p.add_argument("config", help="config path or name under tailseg/configs/")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.backbone.depth=101")
    p.set_defaults(func=run)


def count(module: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen


def model_table(model: nn.Module) -> list[tuple[str, int, int]]:
    from tailseg.models.backbones.cbnet import CompositeBackbone

    rows = [("backbone", *count(model.backbone))]
    if isinstance(model.backbone, CompositeBackbone):
        rows += [
            ("  assistant", *count(model.backbone.assistant)),
            ("  lead (no stem of its own)", *count(model.backbone.lead)),
            ("  composite connections", *count(model.backbone.links)),
        ]
    rows += [
        ("neck (FPN)", *count(model.neck)),
        ("rpn", *count(model.rpn)),
    ]
    for i, (box, mask) in enumerate(zip(model.box_heads, model.mask_heads, strict=True)):
        rows.append((f"stage {i} box head", *count(box)))
        rows.append((f"stage {i} mask head ({type(mask).__name__})", *count(mask)))
    if model.mask_iou_head is not None:
        rows.append(("mask scoring (MaskIoU) head", *count(model.mask_iou_head)))
    rows.append(("total", *count(model)))
    return rows


def run(args: argparse.Namespace) -> int:
    from tailseg.models.build import build_model

    cfg = load_run_config(args.config, args.overrides)
    model = build_model(cfg.model, cfg.infer)
    b = cfg.model.backbone
    arch = f"{b.kind}-{b.depth}" if b.kind == "resnet" else f"swin (embed {b.embed_dim})"
    arch = f"CBNetV2 {arch} × 2" if b.composite else arch
    print(
        f"HTC, {arch} backbone, FPN {cfg.model.fpn_channels}, {cfg.model.num_classes} classes, "
        f"{len(cfg.model.roi.stage_ious)} stages, classifier {cfg.model.roi.classifier}, "
        f"cls loss {cfg.model.roi.cls_loss}"
    )
    print(f"{'part':<34}{'trainable':>14}{'frozen':>14}")
    for name, trainable, frozen in model_table(model):
        print(f"{name:<34}{trainable:>14,}{frozen:>14,}")
    return 0
