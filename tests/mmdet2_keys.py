"""State-dict key names and shapes of CBNetV2's (VDIGPKU/CBNetV2, mmdetection 2.14) and
RefineMask's (zhanggang001/RefineMask, mmdetection 2.3) checkpoints, written from their
configs and module definitions (read, not copied): neither repository runs on torch 2.14
(mmcv-full 1.x), so the converter's tests use state dicts with exactly these names and shapes.

    fake_cbswin_htc(...)          CBSwinTransformer + FPN + HTC (3 stages, optional semantic head)
    fake_cbresnet_backbone(...)   CBResNet, backbone.* only (the repository's one CB-ResNet model
                                  is a Faster R-CNN)
    fake_refinemask_maskrcnn(...) Mask R-CNN with RefineMaskHead

Each returns {key: shape}; () is a scalar (num_batches_tracked).
"""

from __future__ import annotations


def _swin(prefix: str, C: int, depths, heads, W: int, with_patch_embed: bool, out: dict) -> None:
    if with_patch_embed:
        out[f"{prefix}patch_embed.proj.weight"] = (C, 3, 4, 4)
        out[f"{prefix}patch_embed.proj.bias"] = (C,)
        out[f"{prefix}patch_embed.norm.weight"] = (C,)
        out[f"{prefix}patch_embed.norm.bias"] = (C,)
    for i, (d, h) in enumerate(zip(depths, heads, strict=True)):
        c = C * 2**i
        for j in range(d):
            b = f"{prefix}layers.{i}.blocks.{j}."
            out[b + "norm1.weight"] = (c,)
            out[b + "norm1.bias"] = (c,)
            out[b + "attn.relative_position_bias_table"] = ((2 * W - 1) ** 2, h)
            out[b + "attn.relative_position_index"] = (W * W, W * W)  # int64, persistent buffer
            out[b + "attn.qkv.weight"] = (3 * c, c)
            out[b + "attn.qkv.bias"] = (3 * c,)
            out[b + "attn.proj.weight"] = (c, c)
            out[b + "attn.proj.bias"] = (c,)
            out[b + "norm2.weight"] = (c,)
            out[b + "norm2.bias"] = (c,)
            out[b + "mlp.fc1.weight"] = (4 * c, c)
            out[b + "mlp.fc1.bias"] = (4 * c,)
            out[b + "mlp.fc2.weight"] = (c, 4 * c)
            out[b + "mlp.fc2.bias"] = (c,)
        if i < len(depths) - 1:
            out[f"{prefix}layers.{i}.downsample.norm.weight"] = (4 * c,)
            out[f"{prefix}layers.{i}.downsample.norm.bias"] = (4 * c,)
            out[f"{prefix}layers.{i}.downsample.reduction.weight"] = (2 * c, 4 * c)
    for i in range(len(depths)):
        out[f"{prefix}norm{i}.weight"] = (C * 2**i,)
        out[f"{prefix}norm{i}.bias"] = (C * 2**i,)


def _bn(prefix: str, c: int, out: dict) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        out[f"{prefix}.{p}"] = (c,)
    out[f"{prefix}.num_batches_tracked"] = ()


BLOCKS = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def _resnet(
    prefix: str,
    depth: int,
    w: int,
    out: dict,
    stem: bool = True,
    stem_bn: bool = True,
    first_stage: int = 1,
) -> None:
    """mmdet ResNet (style='pytorch', Bottleneck), base width w (64 real)."""
    if stem:
        out[f"{prefix}conv1.weight"] = (w, 3, 7, 7)
    if stem_bn:
        _bn(f"{prefix}bn1", w, out)
    inpl = w
    for i, n in enumerate(BLOCKS[depth]):
        planes = w * 2**i
        for b in range(n):
            cin = inpl if b == 0 else planes * 4
            if i + 1 >= first_stage:
                p = f"{prefix}layer{i + 1}.{b}."
                out[p + "conv1.weight"] = (planes, cin, 1, 1)
                _bn(p + "bn1", planes, out)
                out[p + "conv2.weight"] = (planes, planes, 3, 3)
                _bn(p + "bn2", planes, out)
                out[p + "conv3.weight"] = (planes * 4, planes, 1, 1)
                _bn(p + "bn3", planes * 4, out)
                if b == 0:
                    out[p + "downsample.0.weight"] = (planes * 4, cin, 1, 1)
                    _bn(p + "downsample.1", planes * 4, out)
        inpl = planes * 4


def _fpn_rpn(in_chs, F: int, out: dict) -> None:
    for lvl, c in enumerate(in_chs):
        out[f"neck.lateral_convs.{lvl}.conv.weight"] = (F, c, 1, 1)
        out[f"neck.lateral_convs.{lvl}.conv.bias"] = (F,)
        out[f"neck.fpn_convs.{lvl}.conv.weight"] = (F, F, 3, 3)
        out[f"neck.fpn_convs.{lvl}.conv.bias"] = (F,)
    out["rpn_head.rpn_conv.weight"] = (F, F, 3, 3)
    out["rpn_head.rpn_conv.bias"] = (F,)
    out["rpn_head.rpn_cls.weight"] = (3, F, 1, 1)  # 3 anchors, sigmoid: 1 channel each
    out["rpn_head.rpn_cls.bias"] = (3,)
    out["rpn_head.rpn_reg.weight"] = (12, F, 1, 1)
    out["rpn_head.rpn_reg.bias"] = (12,)


def fake_cbswin_htc(
    C=32,
    depths=(2, 2, 2, 2),
    heads=(1, 2, 4, 8),
    W=7,
    F=64,
    fc=256,
    mask_dim=64,
    mask_convs=4,
    K=8,
    semantic=True,
    sem_classes=183,
    box="shared2fc",
) -> dict:
    """htc_cbv2_swin_*.py (CBNetV2): CBSwinTransformer + CBFPN + HTC (3 stages)."""
    out: dict = {}
    _swin("backbone.cb_modules.0.", C, depths, heads, W, True, out)
    _swin("backbone.cb_modules.1.", C, depths, heads, W, False, out)  # patch_embed deleted
    chans = [C * 2**i for i in range(4)]
    for i in range(4):
        for j in range(1, 4 - i):  # cb_linears.i.0 is nn.Identity (no tensors)
            out[f"backbone.cb_linears.{i}.{j}.weight"] = (chans[i], chans[i + j], 1, 1)
            out[f"backbone.cb_linears.{i}.{j}.bias"] = (chans[i],)
    _fpn_rpn(chans, F, out)
    for s in range(3):
        p = f"roi_head.bbox_head.{s}."
        if box == "shared2fc":
            out[p + "shared_fcs.0.weight"] = (fc, F * 49)
            out[p + "shared_fcs.0.bias"] = (fc,)
            out[p + "shared_fcs.1.weight"] = (fc, fc)
            out[p + "shared_fcs.1.bias"] = (fc,)
        else:  # "4conv1f": ConvFCBBoxHead(num_shared_convs=4, num_shared_fcs=1), SyncBN
            for k in range(4):
                out[p + f"shared_convs.{k}.conv.weight"] = (F, F, 3, 3)  # bias=False (norm)
                _bn(p + f"shared_convs.{k}.bn", F, out)
            out[p + "shared_fcs.0.weight"] = (fc, F * 49)
            out[p + "shared_fcs.0.bias"] = (fc,)
        out[p + "fc_cls.weight"] = (K + 1, fc)
        out[p + "fc_cls.bias"] = (K + 1,)
        out[p + "fc_reg.weight"] = (4, fc)  # reg_class_agnostic=True
        out[p + "fc_reg.bias"] = (4,)
    for s in range(3):
        p = f"roi_head.mask_head.{s}."
        for k in range(mask_convs):
            out[p + f"convs.{k}.conv.weight"] = (mask_dim, F if k == 0 else mask_dim, 3, 3)
            out[p + f"convs.{k}.conv.bias"] = (mask_dim,)
        out[p + "upsample.weight"] = (mask_dim, mask_dim, 2, 2)  # ConvTranspose2d (in, out, k, k)
        out[p + "upsample.bias"] = (mask_dim,)
        out[p + "conv_logits.weight"] = (K, mask_dim, 1, 1)
        out[p + "conv_logits.bias"] = (K,)
        if s > 0:  # with_conv_res=False on stage 0
            out[p + "conv_res.conv.weight"] = (mask_dim, mask_dim, 1, 1)
            out[p + "conv_res.conv.bias"] = (mask_dim,)
    if semantic:  # FusedSemanticHead(num_ins=5, fusion_level=1, num_convs=4)
        p = "roi_head.semantic_head."
        for lvl in range(5):
            out[p + f"lateral_convs.{lvl}.conv.weight"] = (F, F, 1, 1)
            out[p + f"lateral_convs.{lvl}.conv.bias"] = (F,)
        for k in range(4):
            out[p + f"convs.{k}.conv.weight"] = (F, F, 3, 3)  # conv_out_channels = F here
            out[p + f"convs.{k}.conv.bias"] = (F,)
        out[p + "conv_embedding.conv.weight"] = (F, F, 1, 1)
        out[p + "conv_embedding.conv.bias"] = (F,)
        out[p + "conv_logits.weight"] = (sem_classes, F, 1, 1)
        out[p + "conv_logits.bias"] = (sem_classes,)
    return out


def fake_cbresnet_backbone(depth=14, w=16) -> dict:
    """CBResNet(cb_del_stages=1, cb_inplanes=[w, 4w, 8w, 16w, 32w]) backbone.* keys."""
    out: dict = {}
    _resnet("backbone.cb_modules.0.", depth, w, out)
    # lead: conv1 and layer1 deleted, its bn1 (norm1) is NOT deleted by del_layers
    _resnet("backbone.cb_modules.1.", depth, w, out, stem=False, stem_bn=True, first_stage=2)
    inpl = [w, 4 * w, 8 * w, 16 * w, 32 * w]
    for i in range(1, 4):
        for j in range(4 - i):
            out[f"backbone.cb_linears.{i}.{j}.0.weight"] = (inpl[i], inpl[i + j + 1], 1, 1)
            _bn(f"backbone.cb_linears.{i}.{j}.1", inpl[i], out)
    return out


def fake_refinemask_maskrcnn(depth=14, w=16, F=64, fc=256, D=64, K=8, last_K=1) -> dict:
    """configs/refinemask/*: MaskRCNN + RefineRoIHead + RefineMaskHead (mmdet 2.3)."""
    out: dict = {}
    _resnet("backbone.", depth, w, out)
    _fpn_rpn([4 * w, 8 * w, 16 * w, 32 * w], F, out)
    p = "roi_head.bbox_head."
    out[p + "shared_fcs.0.weight"] = (fc, F * 49)
    out[p + "shared_fcs.0.bias"] = (fc,)
    out[p + "shared_fcs.1.weight"] = (fc, fc)
    out[p + "shared_fcs.1.bias"] = (fc,)
    out[p + "fc_cls.weight"] = (K + 1, fc)
    out[p + "fc_cls.bias"] = (K + 1,)
    out[p + "fc_reg.weight"] = (4 * K, fc)  # reg_class_agnostic=False
    out[p + "fc_reg.bias"] = (4 * K,)
    p = "roi_head.mask_head."
    for k in range(2):
        out[p + f"instance_convs.{k}.conv.weight"] = (D, F if k == 0 else D, 3, 3)
        out[p + f"instance_convs.{k}.conv.bias"] = (D,)
    for k in range(4):
        out[p + f"semantic_convs.{k}.conv.weight"] = (D, F if k == 0 else D, 3, 3)
        out[p + f"semantic_convs.{k}.conv.bias"] = (D,)
    for s in range(3):
        c = D >> s
        q = p + f"stages.{s}."
        out[q + "semantic_transform_in.weight"] = (c, D, 1, 1)
        out[q + "semantic_transform_in.bias"] = (c,)
        out[q + "semantic_transform_out.weight"] = (c, c, 1, 1)
        out[q + "semantic_transform_out.bias"] = (c,)
        out[q + "instance_logits.weight"] = (K, c, 1, 1)
        out[q + "instance_logits.bias"] = (K,)
        out[q + "fuse_conv.0.weight"] = (c, 2 * c + 2, 1, 1)
        out[q + "fuse_conv.0.bias"] = (c,)
        for k in range(3):
            out[q + f"fuse_conv.1.dilation_conv_{k + 1}.conv.weight"] = (c, c, 3, 3)
            out[q + f"fuse_conv.1.dilation_conv_{k + 1}.conv.bias"] = (c,)
        out[q + "fuse_conv.1.merge_conv.conv.weight"] = (c, c, 1, 1)
        out[q + "fuse_conv.1.merge_conv.conv.bias"] = (c,)
        out[q + "fuse_transform_out.weight"] = (c // 2 - 2, c, 1, 1)
        out[q + "fuse_transform_out.bias"] = (c // 2 - 2,)
    out[p + "final_instance_logits.weight"] = (last_K, D >> 3, 1, 1)
    out[p + "final_instance_logits.bias"] = (last_K,)
    out[p + "semantic_logits.weight"] = (1, D, 1, 1)
    out[p + "semantic_logits.bias"] = (1,)
    return out
