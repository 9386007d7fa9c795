"""Detections as columns (image, category, score, mask RLE, box), validated against the GT.

Results json entries are `{image_id, category_id, score, segmentation?, bbox?}`; segmentation may
be a compressed RLE (`counts` str), an uncompressed RLE (`counts` list) or polygons (merged into
one RLE at the image size). Errors name the entry: ``res.json: results[12].score: NaN``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from tailseg.data.annotations import INT64, AnnotationFile, DataError
from tailseg.data.json_io import read_json
from tailseg.structures import masks as mask_ops

log = logging.getLogger("tailseg.evaluation")


@dataclass
class Detections:
    """D detections in results-file order.

    image_ids, category_ids (D,) int64 · scores (D,) float64 · rles: D compressed RLE dicts at
    their image's size (or None) · boxes (D, 4) float64 xywh abs px (or None).
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    rles: list[dict] | None = None
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def from_predictions(
        gt: AnnotationFile, predictions: list[dict[str, Any]], score_key: str = "scores"
    ) -> Detections:
        """Columns from per-image model outputs, no json involved (the trainer's path).

        Each prediction: `image_id` (int), `labels` (N,) contiguous 0..C-1, `scores` (N,)
        (or the column `score_key`, e.g. `mask_scores`, where a prediction has it), and
        `masks` (N, H, W) bool at the image's size and/or `rles` (N compressed RLEs) and/or
        `boxes` (N, 4) xyxy abs px. Arrays may be NumPy or torch tensors (on any device).
        """
        ids, cats, scores, rles, boxes = [], [], [], [], []
        with_masks = all("masks" in p or "rles" in p for p in predictions)
        with_boxes = all("boxes" in p for p in predictions)
        for n, p in enumerate(predictions):
            where = f"predictions[{n}]"
            iid = int(p["image_id"])
            im = gt.image_by_id.get(iid)
            if im is None:
                raise DataError(f"{where}.image_id: image {iid} is not in {gt.path}")
            labels = _numpy(p["labels"]).astype(np.int64).reshape(-1)
            if len(labels) and (labels.min() < 0 or labels.max() >= gt.num_classes):
                raise DataError(f"{where}.labels: outside 0..{gt.num_classes - 1}")
            sc = _numpy(p.get(score_key, p["scores"])).astype(np.float64).reshape(-1)
            if len(sc) != len(labels):
                raise DataError(f"{where}.scores: {len(sc)} scores for {len(labels)} labels")
            ids.append(np.full(len(labels), iid, dtype=np.int64))
            cats.append(np.asarray(gt.category_ids, dtype=np.int64)[labels])
            scores.append(sc)
            if with_masks:
                rles += _prediction_rles(p, im.height, im.width, len(labels), where)
            if with_boxes:
                b = _numpy(p["boxes"]).astype(np.float64).reshape(-1, 4)
                boxes.append(np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1))
        if not predictions:
            return Detections.empty()
        out = Detections(
            np.concatenate(ids),
            np.concatenate(cats),
            np.concatenate(scores),
            rles if with_masks else None,
            np.concatenate(boxes) if with_boxes else None,
        )
        bad = np.flatnonzero(~np.isfinite(out.scores) | (out.scores < 0))
        if len(bad):
            raise DataError(f"predictions: score {out.scores[bad[0]]} is not a finite number >= 0")
        return out

    @staticmethod
    def empty() -> Detections:
        z = np.zeros(0, dtype=np.int64)
        return Detections(z, z.copy(), np.zeros(0), [], np.zeros((0, 4)))


def _column(results: list[dict], key: str, source: str, kinds: str) -> np.ndarray:
    """One field of every result as an array whose dtype kind is in `kinds` ("i" or "if")."""
    try:
        values = [r[key] for r in results]
    except (KeyError, TypeError):
        i = next(i for i, r in enumerate(results) if not isinstance(r, dict) or key not in r)
        what = "missing field" if isinstance(results[i], dict) else "expected an object"
        raise DataError(f"{source}: results[{i}].{key}: {what}") from None
    try:
        arr = np.array(values)
    except (ValueError, OverflowError):
        arr = np.array(values, dtype=object)
    if arr.ndim == 1 and arr.dtype.kind in kinds and bool not in set(map(type, values)):
        return arr
    expected = "an integer" if kinds == "i" else "a number"
    for i, v in enumerate(values):  # slow path, only to name the offending entry
        ok = isinstance(v, int) if kinds == "i" else isinstance(v, int | float)
        if not ok or isinstance(v, bool):
            raise DataError(f"{source}: results[{i}].{key}: expected {expected}, got {v!r:.40}")
        if isinstance(v, int) and not INT64[0] <= v <= INT64[1]:
            raise DataError(f"{source}: results[{i}].{key}: {v} does not fit a 64-bit integer")
    raise DataError(f"{source}: results: {key}: expected {expected} in every result")


def _numpy(x: Any) -> np.ndarray:
    """NumPy view of a NumPy array or a torch tensor (moved to the CPU), without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _prediction_rles(p: dict[str, Any], h: int, w: int, n: int, where: str) -> list[dict]:
    if "rles" in p:
        rles = list(p["rles"])
        for r in rles:
            if list(r["size"]) != [h, w]:
                raise DataError(f"{where}.rles: size {r['size']} differs from the image [{h}, {w}]")
    else:
        masks = _numpy(p["masks"]).astype(np.uint8)
        if masks.shape != (n, h, w):
            raise DataError(f"{where}.masks: shape {masks.shape}, expected ({n}, {h}, {w})")
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if n else []
    if len(rles) != n:
        raise DataError(f"{where}.rles: {len(rles)} masks for {n} labels")
    return rles


def _to_rle(segm: Any, h: int, w: int) -> dict:
    """A result's segmentation → RLE; a compressed `counts` is left for `check_rle_strings`."""
    if isinstance(segm, dict):
        mask_ops.check_rle(segm, h, w)
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, h, w)
        return {"size": [h, w], "counts": segm["counts"]}
    if isinstance(segm, list) and segm and all(isinstance(p, list) for p in segm):
        parts, _ = mask_ops.clean_polygons(segm, h, w)
        if not parts:
            raise mask_ops.SegmentationError("segmentation", "no polygon with at least 3 points")
        return mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
    raise mask_ops.SegmentationError("segmentation", "expected an RLE object or a list of polygons")


def _boxes(results: list[dict], source: str) -> np.ndarray:
    """Every result's `bbox` as (N, 4) xywh: finite numbers, width and height >= 0."""
    raw = [r["bbox"] for r in results]
    try:
        boxes = np.array(raw, dtype=np.float64)
        ok = boxes.shape == (len(raw), 4) and not (
            {bool, str} & set(map(type, itertools.chain.from_iterable(raw)))
        )
    except (ValueError, TypeError, OverflowError):
        ok = False
    if not ok:
        for i, b in enumerate(raw):
            if not (
                isinstance(b, list)
                and len(b) == 4
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in b)
            ):
                raise DataError(
                    f"{source}: results[{i}].bbox: expected [x, y, w, h], got {b!r:.60}"
                )
        raise DataError(f"{source}: results: bbox: expected [x, y, w, h] in every result")
    if not np.isfinite(boxes).all():
        i = int(np.flatnonzero(~np.isfinite(boxes).all(1))[0])
        raise DataError(f"{source}: results[{i}].bbox: not finite")
    negative = np.flatnonzero((boxes[:, 2] < 0) | (boxes[:, 3] < 0))
    if len(negative):
        i = int(negative[0])
        raise DataError(
            f"{source}: results[{i}].bbox: negative width or height "
            f"({boxes[i, 2]:g} x {boxes[i, 3]:g}; a box is [x, y, w, h])"
        )
    return boxes


def from_results(
    results: Any,
    gt: AnnotationFile,
    *,
    need_masks: bool,
    source: str = "results",
    box_scores: bool = False,
) -> Detections:
    """Validate a results list against `gt` and turn it into columns.

    Masks are read when `need_masks` or when some result has no `bbox` (box evaluation then
    uses the mask's tight box). With `box_scores` (box evaluation), results rank by their
    `bbox_score` when every result has one: tailseg writes it when Mask Scoring gives the masks
    scores of their own (`score`), which is what segm and boundary evaluation rank by.

    Unknown image or category ids, booleans where numbers belong, NaN / infinite / negative
    scores, boxes with a negative width or height, masks whose size is not their image's and RLE
    counts that do not decode to h*w pixels are errors naming the entry and field. An empty list
    is allowed (with a warning): every class with ground truth then has AP 0.
    """
    if not isinstance(results, list):
        raise DataError(f"{source}: a results file is a json list, got {type(results).__name__}")
    if not results:
        log.warning("%s: no detections; every class with ground truth gets AP 0", source)
        return Detections.empty()
    image_ids = _column(results, "image_id", source, "i").astype(np.int64)
    category_ids = _column(results, "category_id", source, "i").astype(np.int64)
    key = "score"
    with_box_score = [isinstance(r, dict) and "bbox_score" in r for r in results]
    if any(with_box_score) and not all(with_box_score):
        i = with_box_score.index(False)
        raise DataError(
            f"{source}: results[{i}].bbox_score: missing field ({sum(with_box_score)} of "
            f"{len(results)} results have one: all or none)"
        )
    if box_scores and all(with_box_score):
        key = "bbox_score"
    scores = _column(results, key, source, "if").astype(np.float64)

    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0))
    if len(bad):
        i = int(bad[0])
        value = float(scores[i])
        raise DataError(f"{source}: results[{i}].{key}: {value!r} is not a finite number >= 0")
    known_images = np.array(sorted(gt.image_by_id), dtype=np.int64)
    unknown = np.flatnonzero(~np.isin(image_ids, known_images))
    if len(unknown):
        i = int(unknown[0])
        raise DataError(
            f"{source}: results[{i}].image_id: image {image_ids[i]} is not in {gt.path} "
            f"({len(unknown)} such results)"
        )
    unknown = np.flatnonzero(~np.isin(category_ids, np.array(gt.category_ids)))
    if len(unknown):
        i = int(unknown[0])
        raise DataError(
            f"{source}: results[{i}].category_id: category {category_ids[i]} is not in "
            f"{gt.path} ({len(unknown)} such results)"
        )

    has_boxes = all("bbox" in r for r in results)
    rles = _masks(results, gt, source) if need_masks or not has_boxes else None
    boxes = _boxes(results, source) if has_boxes else None
    return Detections(image_ids, category_ids, scores, rles, boxes)


def _masks(results: list[dict], gt: AnnotationFile, source: str) -> list[dict]:
    """Every result's segmentation as an RLE at its image's size, checked."""
    rles: list[dict] = []
    compressed: list[int] = []  # results whose counts string is checked below, all at once
    sizes = {iid: [im.height, im.width] for iid, im in gt.image_by_id.items()}
    for i, r in enumerate(results):
        segm = r.get("segmentation")
        if segm is None:
            raise DataError(f"{source}: results[{i}].segmentation: missing field")
        hw = sizes[r["image_id"]]
        size = segm.get("size") if isinstance(segm, dict) else None
        if (  # fast path: a compressed RLE of the right size is used as it is
            type(size) is list
            and size == hw
            and type(size[0]) is int
            and type(size[1]) is int
            and type(segm.get("counts")) is str
        ):
            rles.append(segm)
            compressed.append(i)
            continue
        try:
            rle = _to_rle(segm, *hw)
        except mask_ops.SegmentationError as e:
            raise DataError(f"{source}: results[{i}].{e.field}: {e.problem}") from None
        rles.append(rle)
        if isinstance(segm, dict) and not isinstance(segm["counts"], list):
            compressed.append(i)
    pixels = {iid: h * w for iid, (h, w) in sizes.items()}
    bad, problem = mask_ops.check_rle_strings(
        [rles[i]["counts"] for i in compressed],
        [pixels[results[i]["image_id"]] for i in compressed],
    )
    if bad >= 0:
        raise DataError(f"{source}: results[{compressed[bad]}].segmentation.counts: {problem}")
    return rles


def load_results(
    path: str | Path, gt: AnnotationFile, *, need_masks: bool, box_scores: bool = False
) -> Detections:
    data = read_json(path)
    return from_results(data, gt, need_masks=need_masks, source=str(path), box_scores=box_scores)
