"""HTC mask head: four 3×3 convs, a 2× deconvolution and class-specific 28×28 logits.

Mask information flow: a later stage adds ReLU(1×1 conv) of the previous stages' mask features
(`res_feat`) to its RoI features before its convs, as mmdetection's `HTCMaskHead` (`conv_res`,
a ConvModule: conv + ReLU). Logits are computed for given labels only (one channel per RoI), so
memory grows with RoIs, not RoIs × classes.

Initialisation as mmdetection's `FCNMaskHead` / ConvModule: every conv, the deconvolution and
the logits get Kaiming-normal weights (fan_out, ReLU gain) and zero biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def flow_then_convs(
    x: Tensor, res_feat: Tensor | None, res: nn.Module | None, convs: nn.ModuleList
) -> Tensor:
    """HTC's mask information flow, then the head's convs: x + ReLU(res(res_feat)) when both
    exist, then ReLU(conv) for each conv."""
    if res is not None and res_feat is not None:
        x = x + F.relu(res(res_feat))
    for conv in convs:
        x = F.relu(conv(x))
    return x


class HTCMaskHead(nn.Module):
    """The interface every mask head of the cascade has: `sizes` of its outputs (coarse to
    fine) with their loss weights and boundary flags (see `refinemask_loss`), `prepare` (image
    level inputs, once per batch), `features` (for the information flow), `forward` and
    `refined` (the inference logits from the outputs)."""

    sizes = (28,)
    stage_weights = (1.0,)
    boundary_stages = (False,)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_dim: int = 256,
        num_convs: int = 4,
        with_res: bool = False,
    ) -> None:
        super().__init__()
        self.res = nn.Conv2d(conv_dim, in_channels, 1) if with_res else None
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else conv_dim, conv_dim, 3, padding=1)
            for i in range(num_convs)
        )
        self.upsample = nn.ConvTranspose2d(conv_dim, conv_dim, 2, stride=2)
        self.logits = nn.Conv2d(conv_dim, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor, res_feat: Tensor | None = None) -> Tensor:
        """roi_feats (R, C, 14, 14) [+ previous mask features] → mask features (R, D, 14, 14)."""
        return flow_then_convs(x, res_feat, self.res, self.convs)

    def prepare(self, feats: list[Tensor]) -> None:
        """No image-level input."""
        return None

    def forward(
        self,
        x: Tensor,
        res_feat: Tensor | None = None,
        labels: Tensor | None = None,
        rois: Tensor | None = None,
        context: None = None,
        index: Tensor | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """Returns ([logits], mask features (R, D, 14, 14) that feed the next stage).

        logits: (K, 28, 28) for RoIs `index` (default: all R) in the channels of `labels` (K,);
        without labels, all classes (R, C, 28, 28). Several detections may share one RoI.
        """
        feat = self.features(x, res_feat)
        up = F.relu(self.upsample(feat))  # (R, D, 28, 28)
        if labels is None:
            return [self.logits(up)], feat
        if index is not None:
            up = up[index]  # (K, D, 28, 28)
        w = self.logits.weight[labels, :, 0, 0]  # (K, D): each label's 1×1 kernel
        logits = torch.einsum("kdhw,kd->khw", up, w) + self.logits.bias[labels][:, None, None]
        return [logits], feat

    @staticmethod
    def refined(logits: list[Tensor]) -> Tensor:
        """The inference logits (K, 28, 28)."""
        return logits[-1]
