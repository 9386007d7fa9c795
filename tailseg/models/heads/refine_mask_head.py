"""RefineMask head (Zhang et al., CVPR 2021), as HTC's last mask head.

    semantic branch, once per image:  P2 → 4 × (conv3×3 + ReLU) → feat (B, D, H/4, W/4)
                                      feat → conv1×1 → foreground logits (B, 1, H/4, W/4)
    instance branch, per RoI:         14×14 RoI features [+ ReLU(conv1×1(earlier heads))]
                                      → 2 × (conv3×3 + ReLU) → (R, D, 14, 14)
    three semantic fusion stages, 14 → 28 → 56 → 112, channels D → D/2 → D/4 → D/8; stage s
    (C channels at S×S) fuses [instance features; RoIAlign of ReLU(conv1×1(feat)) → conv1×1;
    its mask of the RoI's class; RoIAlign of the foreground probability] with a 1×1 conv, a
    multi-branch fusion (3×3 convs of dilation 1, 3, 5, each with its ReLU, summed, then 1×1)
    and a 1×1 conv to C/2 − 2 channels, upsamples 2× (bilinear) and appends both masks,
    upsampled, as channels.
    A last 1×1 conv gives the class-agnostic 112×112 logits.

Outputs are logits at 14, 28, 56 and 112 of each RoI's class only (the class-specific 1×1
kernels are gathered per RoI, never computed for every class). Inference keeps, from 28 up,
the upsampled previous prediction outside its width-1 boundary region and takes the finer
stage's logits inside it (`refine`). Every conv gets Kaiming-normal weights (fan_out, ReLU)
and zero biases, as the reference — except the four that output logits (the stages' masks, the
final 112×112 and the semantic map): there fan_out is 1 (or the class count), and Kaiming
gave initial logits with a standard deviation of 600 at 112×112 on the tiny model (BCE in the
hundreds, whose gradients then dominate a clipped step); they start at N(0, 0.001²) instead,
as detectron2's mask predictor, so every mask starts at probability ½.

In the cascade the head's weights are channels-last (see `HybridTaskCascade`), and so are its
activations: the concatenations keep that layout (`_cat`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from tailseg.models.heads.mask_head import flow_then_convs
from tailseg.models.losses.refinemask import refine, up2

SEMANTIC_STRIDE = 4  # the semantic branch runs on P2


@dataclass
class SemanticContext:
    """The semantic branch's output for a batch: foreground logits (B, 1, h, w) and each
    fusion stage's transformed semantic features (B, C_s, h, w), at stride 4."""

    logits: Tensor
    stage_feats: list[Tensor]


def _conv(cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)


def _cat(parts: list[Tensor]) -> Tensor:
    """Concatenation along channels, channels-last (the head's layout; torch.cat would give
    NCHW for the one-channel masks and each conv would then copy its input back). Under
    autograd (training) a plain cat, as cat(out=) has no gradient."""
    if torch.is_grad_enabled():
        return torch.cat(parts, 1)
    n, _, h, w = parts[0].shape
    shape = (n, sum(p.shape[1] for p in parts), h, w)
    x = parts[0]
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    return torch.cat(parts, 1, out=out)


def _class_logits(conv: nn.Conv2d, x: Tensor, labels: Tensor) -> Tensor:
    """x (N, C, S, S), labels (N,) → (N, S, S): each RoI's class channel of a 1×1 conv."""
    w = conv.weight[labels, :, 0, 0]  # (N, C)
    return torch.einsum("nchw,nc->nhw", x, w) + conv.bias[labels][:, None, None]


class FusionStage(nn.Module):
    """One semantic fusion stage: C channels at S×S → C/2 channels at 2S×2S."""

    def __init__(
        self, channels: int, semantic_channels: int, num_classes: int, dilations: tuple[int, ...]
    ) -> None:
        super().__init__()
        c = channels
        self.semantic_in = _conv(semantic_channels, c)  # on the image's semantic features
        self.semantic_out = _conv(c, c)
        self.mask = _conv(c, num_classes)  # class-specific instance mask logits
        self.fuse_in = _conv(2 * c + 2, c)
        self.branches = nn.ModuleList(_conv(c, c, 3, d) for d in dilations)
        self.merge = _conv(c, c)
        self.fuse_out = _conv(c, c // 2 - 2)

    def forward(
        self, x: Tensor, sem_feat: Tensor, sem_prob: Tensor, rois: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """x (N, C, S, S) instance features; sem_feat (B, C, h, w) = ReLU(semantic_in(P2
        features)); sem_prob (B, 1, h, w) → (mask logits (N, S, S), features (N, C/2, 2S, 2S))."""
        s = x.shape[-1]
        scale = 1.0 / SEMANTIC_STRIDE
        isf = roi_align(sem_feat, rois, (s, s), scale, sampling_ratio=0, aligned=True)
        isf = F.relu(self.semantic_out(isf), inplace=True)  # (N, C, S, S)
        logits = _class_logits(self.mask, x, labels)  # (N, S, S)
        inst_mask = logits.sigmoid()[:, None]  # (N, 1, S, S)
        sem_mask = roi_align(sem_prob, rois, (s, s), scale, sampling_ratio=0, aligned=True)
        f = F.relu(self.fuse_in(_cat([x, isf, inst_mask, sem_mask])), inplace=True)  # (N, C, S, S)
        # each dilated branch is conv + ReLU (RefineMask's MultiBranchFusion), then summed
        y = F.relu(self.branches[0](f), inplace=True)
        for branch in self.branches[1:]:
            y = y + F.relu(branch(f), inplace=True)  # not in place: ReLU's backward needs y
        f = F.relu(self.merge(y), inplace=True)
        f = F.relu(self.fuse_out(f), inplace=True)  # (N, C/2 − 2, S, S)
        # no ReLU after the upsampling: bilinear weights are convex, f stays ≥ 0
        f = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False)
        return logits, _cat([f, up2(inst_mask), up2(sem_mask)])  # (N, C/2, 2S, 2S)


class RefineMaskHead(nn.Module):
    """Mask logits at `sizes` (14, 28, 56, 112) of each RoI's class, from its 14×14 features,
    the earlier heads' mask features and the image's semantic branch."""

    sizes = (14, 28, 56, 112)
    stage_weights = (0.25, 0.5, 0.75, 1.0)
    boundary_stages = (False, False, True, True)  # 56 and 112 learn only near the boundary

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_dim: int = 256,
        num_convs: int = 2,
        num_semantic_convs: int = 4,
        dilations: tuple[int, ...] = (1, 3, 5),
        with_res: bool = True,
        res_channels: int = 256,
    ) -> None:
        super().__init__()
        if conv_dim % 8 or conv_dim < 32:
            raise ValueError(f"RefineMask needs conv_dim a multiple of 8, >= 32; got {conv_dim}")
        self.res = _conv(res_channels, in_channels) if with_res else None
        self.convs = nn.ModuleList(
            _conv(in_channels if i == 0 else conv_dim, conv_dim, 3) for i in range(num_convs)
        )
        self.semantic_convs = nn.ModuleList(
            _conv(in_channels if i == 0 else conv_dim, conv_dim, 3)
            for i in range(num_semantic_convs)
        )
        self.semantic_logits = _conv(conv_dim, 1)
        self.stages = nn.ModuleList()
        for s in range(len(self.sizes) - 1):
            self.stages.append(FusionStage(conv_dim >> s, conv_dim, num_classes, dilations))
        self.final = _conv(conv_dim >> (len(self.sizes) - 1), 1)  # class-agnostic at 112
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in [self.final, self.semantic_logits, *(stage.mask for stage in self.stages)]:
            nn.init.normal_(m.weight, std=0.001)

    def prepare(self, feats: list[Tensor]) -> SemanticContext:
        """The semantic branch on P2 (B, C, H/4, W/4), once per batch of images."""
        x = feats[0]
        for conv in self.semantic_convs:
            x = F.relu(conv(x))  # (B, D, H/4, W/4)
        # contiguous: RoIAlign reads NCHW, and these are read once per chunk of RoIs
        stage_feats = [F.relu(stage.semantic_in(x)).contiguous() for stage in self.stages]
        return SemanticContext(self.semantic_logits(x), stage_feats)

    def features(self, x: Tensor, res_feat: Tensor | None = None) -> Tensor:
        """roi_feats (R, C, 14, 14) [+ earlier heads' features] → (R, D, 14, 14)."""
        return flow_then_convs(x, res_feat, self.res, self.convs)

    def forward(
        self,
        x: Tensor,
        res_feat: Tensor | None,
        labels: Tensor,
        rois: Tensor,
        context: SemanticContext,
        index: Tensor | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """x (R, C, 14, 14), rois (R, 5) → ([logits (K, S, S) for S in sizes], features
        (R, D, 14, 14)) for the RoIs `index` (default: all R) in the classes `labels` (K,)."""
        feat = self.features(x, res_feat)
        h, r = feat, rois
        if index is not None:
            h, r = feat[index], rois[index]  # (K, D, 14, 14), (K, 5)
        sem_prob = context.logits.sigmoid()  # (B, 1, h, w)
        out = []
        for stage, sem_feat in zip(self.stages, context.stage_feats, strict=True):
            logits, h = stage(h, sem_feat, sem_prob, r, labels)
            out.append(logits)
        out.append(self.final(h)[:, 0])  # (K, 112, 112)
        return out, feat

    @staticmethod
    def refined(logits: list[Tensor]) -> Tensor:
        """The inference mask (K, 112, 112) logits: 28 → 56 → 112 refinement (14 unused)."""
        return refine(logits[1:], width=1)
