"""The one place where a config becomes modules (an explicit `match` on each `kind`)."""

from __future__ import annotations

from torch import nn

from tailseg.config import BackboneConfig, InferConfig, ModelConfig, RoIConfig
from tailseg.models.assign import AnchorGenerator, BoxCoder, Matcher, Sampler
from tailseg.models.backbones.resnet import ResNet, load_checkpoint_file
from tailseg.models.detectors.htc import HybridTaskCascade, RoISettings, Stage
from tailseg.models.detectors.rpn import RPN, ProposalSettings
from tailseg.models.heads import (
    BoxHead,
    HTCMaskHead,
    MaskIoUHead,
    MultiLevelRoIAlign,
    RefineMaskHead,
    RPNHead,
)
from tailseg.models.losses import ClassificationLoss, SeesawLoss, SoftmaxCrossEntropy
from tailseg.models.necks import FPN


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """One network, or with `composite` CBNetV2's assistant + lead (the checkpoint fills both)."""
    match cfg.kind:
        case "resnet":
            if cfg.composite:
                from tailseg.models.backbones.cbnet import CBResNet

                nets = [ResNet(cfg.depth, cfg.base_width, cfg.frozen_stages) for _ in range(2)]
                backbone = CBResNet(*nets)
            else:
                backbone = ResNet(cfg.depth, cfg.base_width, cfg.frozen_stages)
            if cfg.pretrained:
                backbone.load_torchvision(load_checkpoint_file(cfg.pretrained))
            return backbone
        case "swin":
            from tailseg.models.backbones.cbnet import CBSwinTransformer
            from tailseg.models.backbones.swin import SwinTransformer, load_official_swin

            def swin() -> SwinTransformer:
                return SwinTransformer(
                    embed_dim=cfg.embed_dim,
                    depths=cfg.depths,
                    num_heads=cfg.num_heads,
                    window_size=cfg.window_size,
                    drop_path=cfg.drop_path,
                    frozen_stages=cfg.frozen_stages,
                    checkpoint=cfg.checkpoint,
                )

            if cfg.composite:
                cb = CBSwinTransformer(swin(), swin())
                if cfg.pretrained:
                    cb.load_official(load_checkpoint_file(cfg.pretrained))
                return cb
            backbone = swin()
            if cfg.pretrained:
                load_official_swin(backbone, load_checkpoint_file(cfg.pretrained))
            return backbone
    raise ValueError(f"backbone.kind: unknown {cfg.kind!r}")


def build_cls_loss(cfg: RoIConfig) -> ClassificationLoss:
    match cfg.cls_loss:
        case "softmax":
            return SoftmaxCrossEntropy()
        case "seesaw":
            return SeesawLoss(cfg.seesaw_p, cfg.seesaw_q, cfg.seesaw_eps)
    raise ValueError(f"roi.cls_loss: unknown {cfg.cls_loss!r}")


def build_mask_head(kind: str, cfg: ModelConfig, stage: int) -> nn.Module:
    roi = cfg.roi
    match kind:
        case "htc":
            return HTCMaskHead(
                cfg.fpn_channels,
                cfg.num_classes,
                roi.mask_conv_dim,
                roi.mask_num_convs,
                with_res=stage > 0,
            )
        case "refinemask":
            return RefineMaskHead(
                cfg.fpn_channels,
                cfg.num_classes,
                roi.mask_conv_dim,
                with_res=stage > 0,
                res_channels=roi.mask_conv_dim,
            )
    raise ValueError(f"roi.mask_heads[{stage}]: unknown {kind!r}")


def build_model(cfg: ModelConfig, infer: InferConfig | None = None) -> HybridTaskCascade:
    infer = infer or InferConfig()
    backbone = build_backbone(cfg.backbone)
    neck = FPN(backbone.out_channels, cfg.fpn_channels)
    r = cfg.rpn
    anchors = AnchorGenerator((4, 8, 16, 32, 64), r.anchor_ratios, r.anchor_scales)
    rpn = RPN(
        RPNHead(cfg.fpn_channels, anchors.num_anchors),
        anchors,
        Matcher(r.pos_iou, r.neg_iou, min_pos_iou=r.neg_iou, low_quality_matches=True),
        Sampler(r.num_samples, r.pos_fraction),
        BoxCoder(),
        ProposalSettings(r.train_pre_nms, r.train_proposals, r.nms_iou),
        ProposalSettings(r.test_pre_nms, r.test_proposals, r.nms_iou),
        allowed_border=r.allowed_border,
    )
    roi = cfg.roi
    cls_loss = build_cls_loss(roi)
    stages = [
        Stage(iou, w, tuple(stds))  # type: ignore[arg-type]
        for iou, w, stds in zip(roi.stage_ious, roi.stage_weights, roi.stage_stds, strict=True)
    ]
    box_heads = [
        BoxHead(
            cfg.fpn_channels,
            cls_loss.num_outputs(cfg.num_classes),
            fc_dim=roi.fc_dim,
            cosine=roi.classifier == "cosine",
            temperature=roi.temperature,
            box_classes=1 if roi.class_agnostic_boxes else cfg.num_classes,
        )
        for _ in stages
    ]
    mask_heads = [build_mask_head(kind, cfg, i) for i, kind in enumerate(roi.mask_heads)]
    mask_iou_head = None
    if roi.mask_scoring:
        mask_iou_head = MaskIoUHead(
            cfg.fpn_channels, cfg.num_classes, conv_dim=roi.mask_conv_dim, fc_dim=roi.fc_dim
        )
    settings = RoISettings(
        num_samples=roi.num_samples,
        pos_fraction=roi.pos_fraction,
        box_loss_weight=roi.box_loss_weight,
        score_thr=infer.score_thr,
        nms_iou=infer.nms_iou,
        max_per_img=infer.max_per_img,
        mask_merge=roi.mask_merge,
        mask_iou_weight=roi.mask_iou_weight,
    )
    return HybridTaskCascade(
        backbone,
        neck,
        rpn,
        MultiLevelRoIAlign(7),
        MultiLevelRoIAlign(14),
        box_heads,
        mask_heads,
        cls_loss,
        stages,
        cfg.num_classes,
        settings,
        mask_iou_head,
        assist_loss_weight=cfg.assist_loss_weight,
    )
