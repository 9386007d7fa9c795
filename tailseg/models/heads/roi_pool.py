"""Multi-level RoIAlign: each RoI is pooled from the pyramid level that matches its size.

level = floor(log2(sqrt(w·h) / finest_scale + 1e-6)), clamped to the levels given (P2–P5),
so RoIs smaller than 112 px use P2, up to 224 px P3, and so on; aligned pixel centres.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align


def rois_with_batch_index(boxes: list[Tensor]) -> Tensor:
    """Per-image boxes (N_i, 4) → rois (ΣN_i, 5) with the image index in column 0."""
    idx = [torch.full((len(b), 1), i, dtype=b.dtype, device=b.device) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(idx), torch.cat(boxes)], dim=1)


class MultiLevelRoIAlign(nn.Module):
    def __init__(
        self,
        output_size: int,
        strides: tuple[int, ...] = (4, 8, 16, 32),
        finest_scale: float = 56.0,
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.strides = strides
        self.finest_scale = finest_scale

    def levels(self, rois: Tensor) -> Tensor:
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        lvl = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return lvl.clamp(0, len(self.strides) - 1).long()

    def forward(self, feats: list[Tensor], rois: Tensor) -> Tensor:
        """feats P2.. (B, C, H_l, W_l), rois (R, 5) → pooled (R, C, S, S)."""
        s = self.output_size
        out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], s, s))
        if rois.numel() == 0:
            return out
        lvl = self.levels(rois)
        for i, stride in enumerate(self.strides):
            idx = torch.nonzero(lvl == i).flatten()
            if idx.numel():
                out[idx] = roi_align(
                    feats[i],
                    rois[idx],
                    (s, s),
                    spatial_scale=1.0 / stride,
                    sampling_ratio=0,
                    aligned=True,
                )
        return out
