"""RPN head: a shared 3×3 conv, then per-anchor objectness and box deltas at every level."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class RPNHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness = nn.Conv2d(in_channels, num_anchors, 1)
        self.deltas = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """feats (B, C, H_l, W_l) per level → objectness (B, H_l·W_l·A), deltas (B, H_l·W_l·A, 4)
        per level, ordered location-major then anchor (as `AnchorGenerator`)."""
        logits, deltas = [], []
        for f in feats:
            t = F.relu(self.conv(f))
            b = f.shape[0]
            logits.append(self.objectness(t).permute(0, 2, 3, 1).reshape(b, -1))  # (B, HWA)
            deltas.append(self.deltas(t).permute(0, 2, 3, 1).reshape(b, -1, 4))  # (B, HWA, 4)
        return logits, deltas
