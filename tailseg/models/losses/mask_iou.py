"""Mask Scoring's targets and loss (Huang et al., CVPR 2019).

The target of a positive RoI is the IoU of its binarised predicted mask with the ground truth,
counted on the mask-target grid: the ground truth's area there is its area inside the RoI
divided by the share of the instance that lies inside the RoI, so an instance cut by its RoI
is not credited with the cut-off part (MS R-CNN's correction).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tailseg.models.losses.detection import global_mean_of


@torch.no_grad()
def area_inside(masks: Tensor, index: Tensor, boxes: Tensor) -> Tensor:
    """masks (M, H, W) bool full-image instance masks, index (P,) into them, boxes (P, 4) xyxy
    → (P,) the pixels of mask index[p] whose centres lie inside box p."""
    h, w = masks.shape[-2:]
    out = torch.zeros(len(boxes), dtype=torch.float32, device=masks.device)
    for p, (m, (x1, y1, x2, y2)) in enumerate(zip(index.tolist(), boxes.tolist(), strict=True)):
        # pixel k (centre k + 0.5) lies in [a, b] when a - 0.5 <= k <= b - 0.5
        xa, xb = max(math.ceil(x1 - 0.5), 0), min(math.floor(x2 - 0.5) + 1, w)
        ya, yb = max(math.ceil(y1 - 0.5), 0), min(math.floor(y2 - 0.5) + 1, h)
        if xb > xa and yb > ya:
            out[p] = masks[m, ya:yb, xa:xb].sum()
    return out


def area_ratio(masks: Tensor, index: Tensor, boxes: Tensor) -> Tensor:
    """(P,) the share of instance index[p] (masks (M, H, W) bool) inside box p; 0 when empty."""
    full = masks.flatten(1).sum(1).to(torch.float32)[index]  # (P,)
    return area_inside(masks, index, boxes) / full.clamp(min=1.0)


@torch.no_grad()
def mask_iou_targets(probs: Tensor, targets: Tensor, ratio: Tensor) -> Tensor:
    """probs (P, S, S) predicted mask probabilities, targets (P, S, S) 0/1 mask targets,
    ratio (P,) share of each instance inside its RoI (`area_ratio`) → IoU targets (P,) in [0, 1]
    (0 where the ratio or the union is 0)."""
    pred = (probs >= 0.5).to(targets.dtype)
    overlap = (pred * targets).sum((1, 2))
    full = targets.sum((1, 2)) / ratio.clamp(min=1e-12)  # instance area in grid pixels
    union = pred.sum((1, 2)) + full - overlap
    ok = (ratio > 0) & (union > 0)
    return torch.where(ok, overlap / union.clamp(min=1e-12), torch.zeros_like(overlap))


def mask_iou_loss(
    pred: Tensor, targets: Tensor, weight: float = 0.5, global_mean: bool = False
) -> dict[str, Tensor]:
    """pred (P,) predicted IoUs, targets (P,) → weight · mean squared error over targets > 0
    (none: zero, graph kept)."""
    valid = targets > 0
    total = ((pred - targets) ** 2 * valid).sum()
    return {"loss_mask_iou": weight * global_mean_of(total, valid.sum(), global_mean)}
