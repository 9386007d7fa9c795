"""Feature Pyramid Network: P2–P5 from C2–C5 by lateral 1×1 convs and a top-down pathway,
3×3 output convs, and P6 as a stride-2 subsampling of P5."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    def __init__(
        self, in_channels: list[int], out_channels: int = 256, extra_levels: int = 1
    ) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )
        self.extra_levels = extra_levels
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """feats C2..C5 (B, C_i, H_i, W_i) → P2..P6 (B, out, H_i, W_i)."""
        laterals = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            up = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            laterals[i - 1] = laterals[i - 1] + up
        outs = [conv(x) for conv, x in zip(self.output, laterals, strict=True)]
        for _ in range(self.extra_levels):
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs
