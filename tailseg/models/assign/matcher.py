"""Max-IoU assignment of candidate boxes (anchors or proposals) to ground truth.

Each candidate takes the ground truth it overlaps most: a positive if that IoU >= pos_thr, a
negative if it is < neg_thr, otherwise ignored. With `low_quality_matches`, every ground truth
whose best IoU is >= min_pos_iou also claims all candidates that reach that best IoU (so every
object gets an anchor, as the RPN needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


@dataclass
class Assignment:
    """matches (N,) index of the assigned ground truth (valid where labels == 1);
    labels (N,) 1 positive / 0 negative / -1 ignore; max_iou (N,)."""

    matches: Tensor
    labels: Tensor
    max_iou: Tensor


class Matcher:
    def __init__(
        self,
        pos_thr: float,
        neg_thr: float,
        min_pos_iou: float | None = None,
        low_quality_matches: bool = False,
    ) -> None:
        if neg_thr > pos_thr:
            raise ValueError(f"neg_thr {neg_thr} must be <= pos_thr {pos_thr}")
        self.pos_thr = pos_thr
        self.neg_thr = neg_thr
        self.min_pos_iou = pos_thr if min_pos_iou is None else min_pos_iou
        self.low_quality_matches = low_quality_matches

    @torch.no_grad()
    def __call__(self, boxes: Tensor, gt_boxes: Tensor) -> Assignment:
        """boxes (N, 4), gt_boxes (M, 4) xyxy → Assignment over the N boxes."""
        n = boxes.shape[0]
        if gt_boxes.numel() == 0:
            zeros = torch.zeros(n, dtype=torch.long, device=boxes.device)
            return Assignment(zeros, zeros.clone(), boxes.new_zeros(n))
        iou = box_iou(gt_boxes, boxes)  # (M, N)
        max_iou, matches = iou.max(dim=0)  # (N,), (N,)
        labels = torch.full((n,), IGNORE, dtype=torch.long, device=boxes.device)
        labels[max_iou < self.neg_thr] = NEGATIVE
        labels[max_iou >= self.pos_thr] = POSITIVE
        if self.low_quality_matches:
            gt_best, _ = iou.max(dim=1)  # (M,)
            for g in torch.nonzero(gt_best >= self.min_pos_iou).flatten().tolist():
                claim = iou[g] == gt_best[g]  # every candidate at this ground truth's best IoU
                matches[claim] = g
                labels[claim] = POSITIVE
        return Assignment(matches, labels, max_iou)
