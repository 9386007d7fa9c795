"""Detections made from ground truth for evaluation tests: shifted hits, confusions, junk, ties."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils

from tailseg.data import AnnotationFile


def shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def rle_json(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def make_detections(
    gt: AnnotationFile, seed: int, *, junk_per_image: int = 8, with_bbox: bool = False
) -> list[dict]:
    """0–3 jittered hits per instance (10% with a wrong class), plus junk; scores rounded to
    two decimals so that equal scores (ties) are common."""
    rng = np.random.default_rng(seed)
    cats = gt.category_ids
    out: list[dict] = []
    for im in gt.images:
        for a in gt.anns_by_image[im.id]:
            m = gt.mask(a)
            for _ in range(int(rng.integers(0, 4))):
                cid = a.category_id if rng.random() > 0.1 else int(rng.choice(cats))
                dm = shift(m, int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
                score = round(float(rng.random()), 2)
                out.append(
                    {
                        "image_id": im.id,
                        "category_id": cid,
                        "score": score,
                        "segmentation": rle_json(dm),
                    }
                )
        for _ in range(junk_per_image):
            dm = np.zeros((im.height, im.width), np.uint8)
            y, x = int(rng.integers(0, im.height)), int(rng.integers(0, im.width))
            dm[y : y + int(rng.integers(2, 80)), x : x + int(rng.integers(2, 80))] = 1
            out.append(
                {
                    "image_id": im.id,
                    "category_id": int(rng.choice(cats)),
                    "score": round(float(rng.random()) * 0.6, 2),
                    "segmentation": rle_json(dm),
                }
            )
    order = rng.permutation(len(out))  # results files need not be grouped by image
    out = [out[i] for i in order]
    if with_bbox:
        for r in out:
            r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
    return out
