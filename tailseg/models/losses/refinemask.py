"""RefineMask's boundary-aware mask loss and its semantic loss (Zhang et al., CVPR 2021).

The boundary region of a binary mask: a pixel belongs to it when more than 10% of the
(2·width+1)² window around it — the mask extended by zeros outside — has the other label.
The head predicts masks at several resolutions (e.g. 14, 28, 56, 112); the coarse ones are
trained with BCE over every pixel, the fine ones only inside the boundary region, where the
refinement changes them at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tailseg.models.losses.detection import global_mean_of


@torch.no_grad()
def boundary_region(masks: Tensor, width: int, fraction: float = 0.1) -> Tensor:
    """masks (N, H, W) 0/1 → bool (N, H, W): pixels where more than `fraction` of the
    (2·width+1)² window (zeros outside the mask) has the other label."""
    if width < 1:
        raise ValueError(f"boundary width must be >= 1, got {width}")
    k = 2 * width + 1
    m = (masks > 0.5).to(torch.float32)[:, None]  # (N, 1, H, W)
    if m.numel() == 0:
        return torch.zeros(masks.shape, dtype=torch.bool, device=masks.device)
    ones = F.conv2d(F.pad(m, (width,) * 4), m.new_ones((1, 1, k, k)))[:, 0]  # (N, H, W) counts
    other = torch.where(m[:, 0] > 0, k * k - ones, ones)  # window pixels of the other label
    return other > fraction * k * k


def up2(x: Tensor) -> Tensor:
    """(N, C, S, S) → (N, C, 2S, 2S), bilinear on corner-aligned grids (masks between stages)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def refine_step(coarse: Tensor, finer: Tensor, width: int = 1) -> Tensor:
    """coarse (N, S, S) and finer (N, 2S, 2S) logits → (N, 2S, 2S): the finer logits inside the
    width-`width` boundary region of the binarised coarse mask (upsampled), the upsampled
    coarse logits elsewhere."""
    region = boundary_region((coarse >= 0).to(coarse.dtype), width).to(coarse.dtype)
    inside = up2(region[:, None])[:, 0] > 0.5  # ties stay with the coarse prediction
    return torch.where(inside, finer, up2(coarse[:, None])[:, 0])


def refine(logits: list[Tensor], width: int = 1) -> Tensor:
    """Coarse-to-fine logits [(N, S, S), (N, 2S, 2S), ...] merged at the finest size."""
    out = logits[0]
    for finer in logits[1:]:
        out = refine_step(out, finer, width)
    return out


def refinemask_loss(
    logits: list[Tensor],
    targets: list[Tensor],
    stage_weights: tuple[float, ...],
    boundary_stages: tuple[bool, ...],
    width: int = 2,
    global_mean: bool = False,
) -> dict[str, Tensor]:
    """Mask losses of coarse-to-fine logits[s] against targets[s], both (P, S_s, S_s).

    A plain stage s is BCE averaged over its pixels. A boundary stage (`boundary_stages[s]`,
    s > 0) averages BCE over the pixels of the boundary region (width `width`) of the previous
    stage's target or of its binarised prediction, found at the previous size and upsampled;
    that prediction is the previous stages merged as at inference (`refine_step`, width 1).
    Returns `loss_mask` = Σ_s stage_weights[s] · loss_s. With `global_mean` under
    torch.distributed the pixel counts are all-reduced (see `global_mean_of`).
    """
    if not (len(logits) == len(targets) == len(stage_weights) == len(boundary_stages)):
        raise ValueError("one target, weight and boundary flag per mask resolution")
    total = logits[0].sum() * 0.0  # keeps the graph when there are no positives
    merged = None
    for s, (x, t, w) in enumerate(zip(logits, targets, stage_weights, strict=True)):
        if boundary_stages[s] and merged is not None:
            with torch.no_grad():
                prev_t = targets[s - 1]
                prev_bin = (merged >= 0).to(prev_t.dtype)
                region = boundary_region(prev_t, width) | boundary_region(prev_bin, width)
                region = up2(region.to(x.dtype)[:, None])[:, 0] >= 0.5  # (P, S, S)
                merged = refine_step(merged, x.detach())
        else:
            region = torch.ones_like(t, dtype=torch.bool)
            merged = x.detach()
        bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")  # (P, S, S)
        total = total + w * global_mean_of((bce * region).sum(), region.sum(), global_mean)
    return {"loss_mask": total}


def semantic_targets(masks: list[Tensor], padded: tuple[int, int], stride: int) -> Tensor:
    """Union of each image's instance masks (M_i, H_i, W_i) bool, zero-padded to `padded`
    (H, W), at 1/stride: (B, H / stride, W / stride) 0/1 — a pixel of the coarse map is
    foreground when at least half of its stride × stride cell is."""
    h, w = padded
    out = []
    for m in masks:
        union = torch.zeros((h, w), dtype=torch.float32, device=m.device)
        if len(m):
            union[: m.shape[-2], : m.shape[-1]] = m.any(0).to(torch.float32)
        out.append(union)
    dense = torch.stack(out)[:, None]  # (B, 1, H, W)
    return (F.avg_pool2d(dense, stride) >= 0.5).to(torch.float32)[:, 0]


def semantic_loss(logits: Tensor, targets: Tensor, global_mean: bool = False) -> dict[str, Tensor]:
    """logits (B, H, W) of the foreground map, targets (B, H, W) 0/1 → BCE averaged over every
    pixel (padding included, as the reference: its target is background)."""
    total = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    return {"loss_semantic": global_mean_of(total, targets.numel(), global_mean)}
