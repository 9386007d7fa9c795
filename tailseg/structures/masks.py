"""Instance-mask codecs: COCO polygons and RLE (compressed and uncompressed) ↔ bitmaps.

RLE encoding/decoding and polygon rasterisation go through `pycocotools.mask`, the reference
codec of the COCO and LVIS formats, so that a mask here is pixel-identical to what the official
evaluators see. This module adds the validation and the error messages that name the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

RLE = dict[str, Any]  # {"size": [h, w], "counts": bytes | str | list[int]}


class SegmentationError(ValueError):
    """A segmentation that cannot be decoded (message names the offending part)."""


def clean_polygons(polygons: Sequence[Sequence[float]]) -> tuple[list[list[float]], list[str]]:
    """Keep the polygon parts with at least 3 points; report the others.

    Returns (valid parts as float lists, one human-readable reason per dropped part). Raises
    SegmentationError for parts that are not flat coordinate lists or have an odd length.
    """
    valid: list[list[float]] = []
    dropped: list[str] = []
    for i, part in enumerate(polygons):
        if not isinstance(part, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in part
        ):
            raise SegmentationError(f"segmentation[{i}]: polygon must be a flat list of numbers")
        if len(part) % 2:
            raise SegmentationError(
                f"segmentation[{i}]: polygon has an odd number of coordinates ({len(part)})"
            )
        coords = [float(v) for v in part]
        if not np.all(np.isfinite(coords)):
            raise SegmentationError(f"segmentation[{i}]: polygon has NaN or infinite coordinates")
        if len(coords) < 6:
            dropped.append(f"segmentation[{i}]: fewer than 3 points ({len(coords) // 2})")
            continue
        valid.append(coords)
    return valid, dropped


def to_rle(segm: Any, height: int, width: int) -> RLE:
    """Any COCO/LVIS segmentation → one compressed RLE at (height, width).

    Polygons (a list of parts) are rasterised and merged into one RLE; an uncompressed RLE
    (`counts` a list) is compressed; a compressed RLE is checked for its size and returned.
    """
    if isinstance(segm, list):
        parts, _ = clean_polygons(segm)
        if not parts:  # degenerate ground truth kept for evaluation: an empty mask
            return mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        raise SegmentationError("segmentation: expected a polygon list or an RLE with size, counts")
    size = segm["size"]
    if not isinstance(size, list | tuple) or len(size) != 2 or list(size) != [height, width]:
        raise SegmentationError(
            f"segmentation.size: {size} differs from the image size [{height}, {width}]"
        )
    counts = segm["counts"]
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise SegmentationError(
                f"segmentation.counts: run lengths sum to {sum(counts)}, not h*w={height * width}"
            )
        return mask_utils.frPyObjects(segm, height, width)
    if isinstance(counts, str):
        return {"size": [height, width], "counts": counts.encode("ascii")}
    if isinstance(counts, bytes):
        return {"size": [height, width], "counts": counts}
    raise SegmentationError("segmentation.counts: must be a list of ints or an RLE string")


def decode(rle: RLE) -> np.ndarray:
    """Compressed RLE → bool bitmap (h, w)."""
    return mask_utils.decode(rle).astype(bool)


def encode(mask: np.ndarray) -> RLE:
    """Bitmap (h, w) → compressed RLE with `counts` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def area(rle: RLE) -> float:
    return float(mask_utils.area(rle))


def bbox_xywh(rle: RLE) -> list[float]:
    """Tight box [x, y, w, h] of a mask (pycocotools convention: integer pixel extents)."""
    return [float(v) for v in mask_utils.toBbox(rle)]


def areas(rles: list[RLE]) -> np.ndarray:
    """Areas (N,) float64 of many RLEs.

    pycocotools' `area` builds `np.array((n,), dtype=np.uint8)` internally, which overflows under
    NumPy 2 for n > 255; it is called here on chunks of 255.
    """
    out = [
        np.asarray(mask_utils.area(rles[i : i + 255]), dtype=np.float64)
        for i in range(0, len(rles), 255)
    ]
    return np.concatenate(out) if out else np.zeros(0)
