"""Mask boundaries for Boundary IoU (Cheng et al., 2021) as the LVIS challenge defines them.

The boundary of a mask M is M minus its erosion by a 3×3 kernel repeated d times, with pixels
outside the image counted as background (so a mask cut by the image border has a boundary
there); d = max(1, round(ratio × image diagonal)). Repeating a 3×3 erosion d times equals one
erosion by a (2d+1)×(2d+1) square, computed here with two passes of run lengths.

Only the mask's bounding box is processed: outside it the mask is 0 (or outside the image, also
0), so the erosion inside the box is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils
from numba import njit


def dilation_pixels(height: int, width: int, ratio: float) -> int:
    """d = max(1, int(round(ratio · sqrt(h² + w²)))) — Python's round, as the reference uses."""
    return max(1, round(ratio * math.sqrt(height**2 + width**2)))


@njit(cache=True)
def boundary_of(mask: np.ndarray, d: int) -> np.ndarray:
    """Boundary uint8 (H, W) of a uint8 (H, W) mask: mask and not eroded by a (2d+1)² square."""
    h, w = mask.shape
    k = 2 * d + 1
    run = np.zeros(max(h, w), np.int32)
    rows_ok = np.zeros((h, w), np.uint8)  # the whole row window [x-d, x+d] is inside the mask
    for y in range(h):
        r = 0
        for x in range(w):
            r = r + 1 if mask[y, x] else 0
            run[x] = r
        for x in range(w - d):
            if run[x + d] >= k:
                rows_ok[y, x] = 1
    out = mask.copy()
    for x in range(w):
        r = 0
        for y in range(h):
            r = r + 1 if rows_ok[y, x] else 0
            run[y] = r
        for y in range(h - d):
            if run[y + d] >= k:
                out[y, x] = 0  # eroded: inside, not boundary
    return out


class BoundaryCrop:
    """A boundary bitmap restricted to the mask's box: `crop` (h, w) uint8 at (`y0`, `x0`)."""

    __slots__ = ("area", "crop", "x0", "y0")

    def __init__(self, rle: dict, ratio: float) -> None:
        height, width = rle["size"]
        x, y, w, h = (int(v) for v in mask_utils.toBbox(rle))
        self.y0, self.x0 = y, x
        if w == 0 or h == 0:
            self.crop = np.zeros((0, 0), np.uint8)
        else:
            mask = mask_utils.decode(rle)[y : y + h, x : x + w]
            self.crop = boundary_of(
                np.ascontiguousarray(mask), dilation_pixels(height, width, ratio)
            )
        self.area = int(self.crop.sum())


@njit(cache=True)
def _overlap(a: np.ndarray, ay: int, ax: int, b: np.ndarray, by: int, bx: int) -> int:
    y0, x0 = max(ay, by), max(ax, bx)
    y1 = min(ay + a.shape[0], by + b.shape[0])
    x1 = min(ax + a.shape[1], bx + b.shape[1])
    n = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            if a[y - ay, x - ax] and b[y - by, x - bx]:
                n += 1
    return n


def boundary_iou(a: BoundaryCrop, b: BoundaryCrop) -> float:
    """|A ∩ B| / |A ∪ B| of two boundaries, as pycocotools' RLE IoU computes it (0 if empty)."""
    inter = _overlap(a.crop, a.y0, a.x0, b.crop, b.y0, b.x0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0
