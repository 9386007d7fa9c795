"""Mask Scoring (Huang et al., CVPR 2019): a head that predicts the IoU of a predicted mask.

Input: the RoI's 14×14 mask features (the mask head's input, before its convs) concatenated
with the max-pooled (2×2) predicted mask probability of the RoI's class at 28×28. A finer
prediction (RefineMask's 112×112) is first resized to 28×28 by area averaging — our choice,
as no reference combines the two. Then four 3×3 convs (the last with stride 2: 14 → 7), two
fully connected layers of `fc_dim` and one output per class; only each RoI's class column is
computed.

Initialisation as mmdetection's `MaskIoUHead`: convs Kaiming normal (fan_out, ReLU), the
hidden FCs Kaiming uniform with a = 1 (Caffe2 Xavier), the output N(0, 0.01²); zero biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mask_for_scoring(probs: Tensor) -> Tensor:
    """Mask probabilities (R, S, S), S a multiple of 28 → (R, 1, 14, 14): area-resized to 28,
    then 2×2 max-pooled."""
    x = probs[:, None]  # (R, 1, S, S)
    if x.shape[-1] != 28:
        x = F.adaptive_avg_pool2d(x, 28)  # exact box filter when S is a multiple of 28
    return F.max_pool2d(x, 2)  # (R, 1, 14, 14)


class MaskIoUHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_dim: int = 256,
        num_convs: int = 4,
        fc_dim: int = 1024,
        roi_size: int = 14,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(
                in_channels + 1 if i == 0 else conv_dim,
                conv_dim,
                3,
                stride=2 if i == num_convs - 1 else 1,
                padding=1,
            )
            for i in range(num_convs)
        )
        side = (roi_size + 1) // 2  # after the stride-2 conv
        self.fc1 = nn.Linear(conv_dim * side * side, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)
        self.iou = nn.Linear(fc_dim, num_classes)
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.iou.weight, std=0.01)
        nn.init.zeros_(self.iou.bias)

    def forward(self, roi_feats: Tensor, mask_probs: Tensor, labels: Tensor) -> Tensor:
        """roi_feats (R, C, 14, 14), mask_probs (R, S, S) of each RoI's class, labels (R,)
        → predicted IoU (R,) of each RoI's mask (unbounded, as trained by MSE)."""
        x = torch.cat([roi_feats, mask_for_scoring(mask_probs)], dim=1)  # (R, C + 1, 14, 14)
        for conv in self.convs:
            x = F.relu(conv(x))  # last: (R, D, 7, 7)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))  # (R, fc_dim)
        w, b = self.iou.weight[labels], self.iou.bias[labels]  # (R, fc_dim), (R,)
        return (x * w).sum(1) + b
