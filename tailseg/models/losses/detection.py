"""Losses of the RPN and the box and mask heads: pure functions of tensors returning dicts."""

from __future__ import annotations

import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def smooth_l1(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Elementwise smooth L1: 0.5 x² / beta below beta, |x| - 0.5 beta above (L1 if beta = 0)."""
    diff = (pred - target).abs()
    if beta <= 0:
        return diff
    return (diff < beta).float() * 0.5 * diff**2 / beta + (diff >= beta).float() * (
        diff - 0.5 * beta
    )


def rpn_loss(
    objectness: Tensor, deltas: Tensor, labels: Tensor, target_deltas: Tensor, beta: float = 1 / 9
) -> dict[str, Tensor]:
    """objectness (N,), deltas (N, 4), labels (N,) 1 / 0 / -1 (not sampled), target_deltas (N, 4).

    Binary cross-entropy over sampled anchors and smooth L1 over positives, both divided by the
    number of sampled anchors (a batch without any gives zero losses).
    """
    sampled = labels >= 0
    pos = labels == 1
    n = sampled.sum().clamp(min=1)
    loss_cls = F.binary_cross_entropy_with_logits(
        objectness[sampled], labels[sampled].to(objectness.dtype), reduction="sum"
    )
    loss_box = smooth_l1(deltas[pos], target_deltas[pos], beta).sum()
    return {"loss_cls": loss_cls / n, "loss_bbox": loss_box / n}


def box_regression_loss(
    deltas: Tensor, target_deltas: Tensor, labels: Tensor, num_classes: int, beta: float = 1.0
) -> dict[str, Tensor]:
    """Smooth L1 over foreground RoIs (labels < num_classes), divided by all sampled RoIs."""
    pos = labels < num_classes
    loss = smooth_l1(deltas[pos], target_deltas[pos], beta).sum()
    return {"loss_bbox": loss / max(labels.numel(), 1)}


def global_mean_of(total: Tensor, count: Tensor | int, global_mean: bool) -> Tensor:
    """total / count; under torch.distributed with `global_mean`, total · world / Σ_ranks count
    (the count all-reduced, the loss scaled by the world size), so that averaging gradients
    across ranks gives exactly the single-process batch's mean."""
    n = total.new_tensor(float(count))
    scale = 1.0
    if global_mean and dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        scale = float(dist.get_world_size())
    return total * scale / n.clamp(min=1.0)
