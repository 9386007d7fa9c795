"""Box deltas (dx, dy, dw, dh) between reference boxes and targets, normalised by means/stds.

encode: dx = (gx - px) / pw, dy = (gy - py) / ph, dw = log(gw / pw), dh = log(gh / ph), then
(d - mean) / std; centres and sizes use x2 - x1 (no +1). decode inverts it, clamping dw/dh to
|log(16 / 1000)| so that a wild prediction cannot overflow exp().
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_DELTA = abs(math.log(16.0 / 1000))


class BoxCoder:
    def __init__(
        self,
        stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        means: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    ) -> None:
        self.stds = stds
        self.means = means

    def encode(self, boxes: Tensor, targets: Tensor) -> Tensor:
        """boxes, targets (N, 4) xyxy abs px → deltas (N, 4)."""
        pw, ph = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        px, py = boxes[:, 0] + 0.5 * pw, boxes[:, 1] + 0.5 * ph
        gw, gh = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
        gx, gy = targets[:, 0] + 0.5 * gw, targets[:, 1] + 0.5 * gh
        deltas = torch.stack(
            [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1
        )  # (N, 4)
        means = deltas.new_tensor(self.means)
        stds = deltas.new_tensor(self.stds)
        return (deltas - means) / stds

    def decode(
        self, boxes: Tensor, deltas: Tensor, image_size: tuple[int, int] | None = None
    ) -> Tensor:
        """boxes (N, 4) xyxy, deltas (N, 4) → boxes (N, 4) xyxy, clipped to (H, W) if given."""
        deltas = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        pw, ph = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        px, py = boxes[:, 0] + 0.5 * pw, boxes[:, 1] + 0.5 * ph
        dw = deltas[:, 2].clamp(-MAX_DELTA, MAX_DELTA)
        dh = deltas[:, 3].clamp(-MAX_DELTA, MAX_DELTA)
        gx, gy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
        gw, gh = pw * dw.exp(), ph * dh.exp()
        out = torch.stack([gx - 0.5 * gw, gy - 0.5 * gh, gx + 0.5 * gw, gy + 0.5 * gh], dim=1)
        if image_size is not None:
            h, w = image_size
            out = torch.stack(
                [
                    out[:, 0].clamp(0, w),
                    out[:, 1].clamp(0, h),
                    out[:, 2].clamp(0, w),
                    out[:, 3].clamp(0, h),
                ],
                dim=1,
            )
        return out
