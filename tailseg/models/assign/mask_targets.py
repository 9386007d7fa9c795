"""Mask targets: each positive RoI's ground-truth mask cropped to the RoI and resized."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_align


@torch.no_grad()
def mask_targets(gt_masks: Tensor, rois: Tensor, matches: Tensor, size: int = 28) -> Tensor:
    """gt_masks (M, H, W) bool, rois (P, 4) xyxy, matches (P,) → targets (P, size, size) float 0/1.

    Bilinear RoIAlign of the matched mask over the RoI (aligned pixel centres), binarised at 0.5.
    """
    return mask_targets_at(gt_masks, rois, matches, (size,))[0]


@torch.no_grad()
def mask_targets_at(
    gt_masks: Tensor, rois: Tensor, matches: Tensor, sizes: tuple[int, ...]
) -> list[Tensor]:
    """`mask_targets` at several sizes (each computed from the full-resolution masks, as
    RefineMask's targets are), converting the masks to floats once."""
    if rois.numel() == 0:
        return [rois.new_zeros((0, s, s)) for s in sizes]
    masks = gt_masks.unsqueeze(1).to(rois.dtype)  # (M, 1, H, W): each mask once
    boxes = torch.cat([matches.to(rois.dtype)[:, None], rois], dim=1)  # (P, 5): RoI p samples
    # the mask of its matched ground truth
    out = []
    for s in sizes:
        t = roi_align(masks, boxes, (s, s), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        out.append((t.squeeze(1) >= 0.5).to(rois.dtype))  # (P, s, s)
    return out
