"""Class-wise NMS over per-class scores, with one box per RoI or one per class."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms


def multiclass_nms(
    boxes: Tensor, scores: Tensor, score_thr: float, iou_thr: float, max_dets: int
) -> tuple[Tensor, Tensor, Tensor]:
    """boxes (R, 4) or per class (R, C, 4), scores (R, C) → kept boxes (K, 4), scores (K,),
    labels (K,), K <= max_dets.

    Every (box, class) pair above `score_thr` is a candidate; NMS runs per class (torchvision's
    batched_nms loops over classes on large inputs, so memory stays linear in candidates).
    """
    r, c = torch.nonzero(scores > score_thr, as_tuple=True)  # candidate rows and classes
    cand_scores = scores[r, c]
    cand_boxes = boxes[r] if boxes.dim() == 2 else boxes[r, c]
    keep = batched_nms(cand_boxes, cand_scores, c, iou_thr)[:max_dets]  # sorted by score
    return cand_boxes[keep], cand_scores[keep], c[keep]


def empty_like_dets(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    return (
        torch.zeros((0, 4), device=device),
        torch.zeros(0, device=device),
        torch.zeros(0, dtype=torch.long, device=device),
    )
