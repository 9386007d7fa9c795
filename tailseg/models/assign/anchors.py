"""Anchors for every location of every pyramid level.

Per level of stride s: base size s · scale, aspect ratios r = h / w (w = size / sqrt(r),
h = size · sqrt(r)), centred on the grid points (x · s, y · s). `inside_image` tells which
anchors lie inside an image, the RPN's training targets.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class AnchorGenerator:
    def __init__(
        self,
        strides: tuple[int, ...] = (4, 8, 16, 32, 64),
        ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
        scales: tuple[float, ...] = (8.0,),
    ) -> None:
        self.strides = strides
        self.cell = []  # per level: (A, 4) anchors centred on the origin
        for s in strides:
            sizes = []
            for r in ratios:  # ratio-major, as mmdetection orders them
                for sc in scales:
                    w, h = s * sc / math.sqrt(r), s * sc * math.sqrt(r)
                    sizes.append([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h])
            self.cell.append(torch.tensor(sizes))

    @property
    def num_anchors(self) -> int:
        return self.cell[0].shape[0]

    def __call__(self, feature_sizes: list[tuple[int, int]], device: torch.device) -> list[Tensor]:
        """Per level (H_l · W_l · A, 4) anchors, location-major then anchor."""
        out = []
        for (h, w), s, cell in zip(feature_sizes, self.strides, self.cell, strict=True):
            ys = torch.arange(h, device=device, dtype=torch.float32) * s
            xs = torch.arange(w, device=device, dtype=torch.float32) * s
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)  # (H·W, 1, 4)
            out.append((shifts + cell.to(device)).reshape(-1, 4))  # (H·W·A, 4)
        return out


def inside_image(
    anchors: Tensor, image_size: tuple[int, int], allowed_border: float = 0.0
) -> Tensor:
    """anchors (N, 4) xyxy → (N,) bool: within `allowed_border` pixels of the (H, W) image.

    As mmdetection's `anchor_inside_flags`: x1, y1 >= -border and x2 < W + border, y2 < H +
    border (strict, so with border 0 an anchor ending exactly on the right or bottom edge is
    out). Pass each image's own size, not the padded batch size.
    """
    h, w = image_size
    b = allowed_border
    return (
        (anchors[:, 0] >= -b)
        & (anchors[:, 1] >= -b)
        & (anchors[:, 2] < w + b)
        & (anchors[:, 3] < h + b)
    )
