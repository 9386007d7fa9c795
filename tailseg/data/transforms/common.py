"""Helpers shared by the transforms: resizing pixels and masks, tight boxes, draws."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from tailseg.structures.targets import Targets


def uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (both ends included)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def tight_boxes(masks: Tensor) -> Tensor:
    """xyxy boxes (M, 4) around the set pixels of masks (M, H, W); zeros for empty masks."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4))
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (M, H), (M, W)
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(dim=1).values
    y1 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x0 = torch.where(cols, ar_w, w).min(dim=1).values
    x1 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(rows.any(dim=1)[:, None], boxes, torch.zeros_like(boxes))


def tighten(t: Targets) -> Targets:
    """Boxes made the tight boxes of the masks; instances whose masks are empty dropped."""
    keep = t.masks.flatten(1).any(dim=1)
    t = t.select(keep)
    return replace(t, boxes=tight_boxes(t.masks))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 (3, H, W) → uint8 (3, h, w), bilinear (antialiased when shrinking)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(
        image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """bool (M, H, W) → bool (M, h, w): bilinear weights thresholded at 0.5."""
    if tuple(masks.shape[-2:]) == tuple(size) or masks.shape[0] == 0:
        return masks.new_zeros((masks.shape[0], *size)) if masks.shape[0] == 0 else masks
    out = F.interpolate(masks[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return out[:, 0] >= 0.5


def resize_sample(image: Tensor, t: Targets, size: tuple[int, int]) -> tuple[Tensor, Targets]:
    """Image and masks to `size` (h, w); boxes recomputed from the masks."""
    t = replace(t, masks=resize_masks(t.masks, size), image_size=(int(size[0]), int(size[1])))
    return resize_image(image, size), tighten(t)


def scaled_size(h: int, w: int, short: float, max_size: int) -> tuple[int, int]:
    """(h, w) scaled so that the short side is `short` and the long side at most `max_size`."""
    s = min(short / min(h, w), max_size / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))
