"""`evaluate(gt, detections, protocol)`: COCO / LVIS / AP‡ numbers equal to the official tools'.

Order of work: caps over the whole results list (per image, then per class; ties keep the
earlier result) → LVIS federated filter (a detection of class c on image I counts only if c has
ground truth on I or is in I's `neg_category_ids`) → IoU per (image, class) group → greedy
matching (`matching.py`) → precision/recall (`accumulate.py`) → the summary statistics.

Equal scores are ordered by ascending image id, then by position in the results list, exactly
as lvis-api's and pycocotools' stable sorts order them.

Segm and boundary evaluation use the mask area of a detection (a result's `bbox` is ignored, as
detectron2 drops it before segm evaluation); bbox evaluation uses `w*h` of the given box, or the
mask's area and tight box when a result has no box (as lvis-api does).

Boundary IoU is only needed where it can change a match: a pair's IoU is min(mask IoU, boundary
IoU), and no pair with mask IoU below the lowest threshold (0.5) can ever match, so boundaries
are computed only for pairs with mask IoU >= 0.5 — the result is exact, not approximate.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from tqdm import tqdm

from tailseg.data.annotations import AnnotationFile
from tailseg.evaluation.accumulate import accumulate
from tailseg.evaluation.boundary import BoundaryCrop, boundary_iou
from tailseg.evaluation.detections import Detections, from_results
from tailseg.evaluation.matching import match_groups
from tailseg.evaluation.protocol import (
    AREA_HI,
    AREA_LO,
    AREA_NAMES,
    IOU_THRS,
    REC_THRS,
    Protocol,
    make_protocol,
)
from tailseg.structures import masks as mask_ops

log = logging.getLogger("tailseg.evaluation")
_warned_frequency: weakref.WeakSet[AnnotationFile] = weakref.WeakSet()  # warn once per file


@dataclass
class EvalResult:
    protocol: Protocol
    stats: dict[str, float]  # under protocol.stat_keys; -1 where undefined
    per_class: list[dict[str, Any]]
    classes_at_cap: list[int]  # category ids whose detections reached max_dets_per_class
    num_detections: int  # in the results
    num_after_caps: int  # after the per-image and per-class caps
    num_evaluated: int  # after caps and the federated filter
    precision: np.ndarray = field(repr=False)  # (T, R, K, A[, M])
    recall: np.ndarray = field(repr=False)  # (T, K, A[, M])

    def to_json(self) -> dict[str, Any]:
        p = self.protocol
        return {
            "protocol": p.name,
            "iou_type": p.iou_type,
            "max_dets_per_image": p.max_dets_per_image,
            "max_dets_per_class": p.max_dets_per_class,
            "dilation": p.dilation if p.iou_type == "boundary" else None,
            **self.stats,
            "num_detections": self.num_detections,
            "num_after_caps": self.num_after_caps,
            "num_evaluated": self.num_evaluated,
            "classes_at_cap": self.classes_at_cap,
            "per_class": self.per_class,
        }


def _cap(keep: np.ndarray, key: np.ndarray, scores: np.ndarray, limit: int) -> np.ndarray:
    """Of `keep`, the `limit` best-scored per key value (ties: earlier results), sorted."""
    o = np.lexsort((keep, -scores[keep], key[keep]))
    k = key[keep][o]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    rank = np.arange(len(o)) - np.repeat(starts, np.diff(np.r_[starts, len(o)]))
    return np.sort(keep[o[rank < limit]])


def _group_rank(sorted_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group starts and the rank of each element in its group, for a sorted key array."""
    if len(sorted_key) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, len(sorted_key)])
    return starts, np.arange(len(sorted_key)) - np.repeat(starts, sizes)


class _GroundTruth:
    """Columns of the ground truth, plus cached RLEs and boundaries."""

    def __init__(self, gt: AnnotationFile, protocol: Protocol) -> None:
        self.file = gt
        self.image_ids = np.array(sorted(gt.image_by_id), dtype=np.int64)
        self.img_rank = {iid: r for r, iid in enumerate(self.image_ids.tolist())}
        anns = gt.annotations
        self.anns = anns
        self.img = np.array([self.img_rank[a.image_id] for a in anns], dtype=np.int64)
        self.label = np.array([gt.label_of[a.category_id] for a in anns], dtype=np.int64)
        self.area = np.array([a.area for a in anns], dtype=np.float64)
        self.box = np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
        crowd = np.array([a.iscrowd for a in anns], dtype=bool)
        coco = protocol.name == "coco"  # lvis-api treats every annotation as a regular one
        self.crowd = crowd if coco else np.zeros(len(anns), dtype=bool)
        self.ignore = self.crowd.copy()
        self.dilation = protocol.dilation
        self._rles: dict[int, dict] = {}
        self._bounds: dict[int, BoundaryCrop] = {}

    def rle(self, i: int) -> dict:
        if i not in self._rles:
            self._rles[i] = self.file.rle(self.anns[i])
        return self._rles[i]

    def boundary(self, i: int) -> BoundaryCrop:
        if i not in self._bounds:
            self._bounds[i] = BoundaryCrop(self.rle(i), self.dilation)
        return self._bounds[i]


def _group_ious(
    protocol: Protocol,
    gt: _GroundTruth,
    gt_ids: np.ndarray,
    rles: list[dict] | None,
    boxes: np.ndarray | None,
    det_pos: np.ndarray,
) -> np.ndarray:
    """IoU (nd, ng) of one group's detections (score order) against its ground truth."""
    crowd = gt.crowd[gt_ids].astype(np.uint8).tolist()
    if protocol.iou_type == "bbox":
        return np.asarray(mask_utils.iou(boxes[det_pos], gt.box[gt_ids], crowd)).reshape(
            len(det_pos), len(gt_ids)
        )
    d_rles = [rles[p] for p in det_pos.tolist()]
    g_rles = [gt.rle(int(j)) for j in gt_ids]
    ious = np.asarray(mask_utils.iou(d_rles, g_rles, crowd), dtype=np.float64).reshape(
        len(det_pos), len(gt_ids)
    )
    if protocol.iou_type == "boundary":
        low = IOU_THRS[0]
        for i, j in zip(*np.nonzero(ious >= low), strict=True):
            if gt.crowd[gt_ids[j]]:
                continue  # crowd regions keep mask IoU
            b = boundary_iou(BoundaryCrop(d_rles[i], gt.dilation), gt.boundary(int(gt_ids[j])))
            ious[i, j] = min(ious[i, j], b)
    return ious


def _check_frequency(gt: AnnotationFile) -> None:
    """Warn (once per file) when categories lack the `frequency` that APr/APc/APf group by."""
    missing = sum(c.frequency is None for c in gt.categories)
    if not missing or gt in _warned_frequency:
        return
    _warned_frequency.add(gt)
    if missing == len(gt.categories):
        log.warning(
            "%s: no category has a `frequency` field (r/c/f), so APr, APc and APf are undefined "
            "(n/a in the summary, -1 in metrics.json)",
            gt.path,
        )
    else:
        log.warning(
            "%s: %d of %d categories have no `frequency` field; they count in AP but in none of "
            "APr, APc, APf",
            gt.path,
            missing,
            len(gt.categories),
        )


def evaluate(
    gt: AnnotationFile,
    detections: Detections | list[dict],
    protocol: Protocol | None = None,
    *,
    progress: bool = False,
) -> EvalResult:
    """Evaluate detections (columns or a results list) against `gt` under `protocol`."""
    protocol = protocol or make_protocol()
    if gt.skipped:
        log.warning(
            "%s: %d ground-truth annotations were skipped when loading; the official tools "
            "count them (load with keep_degenerate=True for exact numbers)",
            gt.path,
            len(gt.skipped),
        )
    if protocol.federated:
        _check_frequency(gt)
    need_masks = protocol.iou_type != "bbox"
    if not isinstance(detections, Detections):
        detections = from_results(detections, gt, need_masks=need_masks)
    dets = detections
    if need_masks and dets.rles is None:
        raise ValueError(f"{protocol.iou_type} evaluation needs masks in the detections")
    k_n = gt.num_classes
    label_of = gt.label_of
    g = _GroundTruth(gt, protocol)

    # 1. caps over the whole results list
    keep = np.arange(len(dets))
    # category ids → labels and image ids → ranks (both id lists are sorted; ids were validated)
    label_all = np.searchsorted(np.asarray(gt.category_ids), dets.category_ids)
    if protocol.name != "coco" and protocol.max_dets_per_image is not None:
        keep = _cap(keep, dets.image_ids, dets.scores, protocol.max_dets_per_image)
    classes_at_cap: list[int] = []
    if protocol.max_dets_per_class is not None:
        counts = np.bincount(label_all[keep], minlength=k_n)
        classes_at_cap = [
            gt.category_ids[k] for k in np.flatnonzero(counts >= protocol.max_dets_per_class)
        ]
        keep = _cap(keep, label_all, dets.scores, protocol.max_dets_per_class)

    num_after_caps = len(keep)

    # 2. federated filter and not-exhaustive flags
    img = np.searchsorted(g.image_ids, dets.image_ids[keep])
    label = label_all[keep]
    key = img * k_n + label
    gt_key = g.img * k_n + g.label
    if protocol.federated:
        neg = [
            g.img_rank[im.id] * k_n + label_of[c] for im in gt.images for c in im.neg_category_ids
        ]
        allowed = np.union1d(gt_key, np.array(neg, dtype=np.int64))
        ok = np.isin(key, allowed)
        keep, img, label, key = keep[ok], img[ok], label[ok], key[ok]
        nel = [
            g.img_rank[im.id] * k_n + label_of[c]
            for im in gt.images
            for c in im.not_exhaustive_category_ids
        ]
        not_exhaustive = np.isin(key, np.array(nel, dtype=np.int64))
    else:
        not_exhaustive = np.zeros(len(keep), dtype=bool)
    scores = dets.scores[keep]

    # 3. group by (image, class), detections by descending score (ties: results order)
    o = np.lexsort((keep, -scores, key))
    keep, img, label, key, scores, not_exhaustive = (
        a[o] for a in (keep, img, label, key, scores, not_exhaustive)
    )
    starts, rank = _group_rank(key)
    if protocol.name == "coco":  # COCOeval keeps the top maxDets[-1] per image and class
        top = rank < protocol.coco_max_dets[-1]
        keep, img, label, key, scores, not_exhaustive, rank = (
            a[top] for a in (keep, img, label, key, scores, not_exhaustive, rank)
        )
        starts, rank = _group_rank(key)
    ends = np.r_[starts[1:], len(key)]

    # detection areas and boxes (in group order)
    rles = [dets.rles[i] for i in keep.tolist()] if dets.rles is not None else None
    boxes = None
    if protocol.iou_type == "bbox":
        if dets.boxes is not None:
            boxes = dets.boxes[keep]
            area = boxes[:, 2] * boxes[:, 3]
        elif rles is not None:
            boxes = np.asarray(mask_utils.toBbox(rles), dtype=np.float64).reshape(-1, 4)
            area = mask_ops.areas(rles)
        else:
            raise ValueError("bbox evaluation needs a bbox or a segmentation in every result")
    else:
        area = mask_ops.areas(rles)

    # 4. IoU blocks for groups that have ground truth
    gt_order = np.lexsort((np.arange(len(gt_key)), gt_key))
    gt_sorted_key = gt_key[gt_order]
    group_key = key[starts]
    g0 = np.searchsorted(gt_sorted_key, group_key, side="left")
    g1 = np.searchsorted(gt_sorted_key, group_key, side="right")
    iou_start = np.zeros(len(starts), dtype=np.int64)
    blocks, offset = [], 0
    with_gt = np.flatnonzero(g1 > g0).tolist()
    for gi in tqdm(with_gt, desc="IoU", unit="group", disable=not progress, leave=False):
        det_pos = np.arange(starts[gi], ends[gi])
        block = _group_ious(protocol, g, gt_order[g0[gi] : g1[gi]], rles, boxes, det_pos)
        iou_start[gi] = offset
        blocks.append(block.reshape(-1))
        offset += block.size
    ious = np.concatenate(blocks) if blocks else np.zeros(0)

    # 5. matching, 6. accumulation per class (ties: image id, then results order)
    matched, matched_ig = match_groups(
        starts,
        ends,
        gt_order,
        g0,
        g1,
        iou_start,
        ious,
        g.area,
        g.ignore,
        g.crowd,
        AREA_LO,
        AREA_HI,
        IOU_THRS,
        len(key),
    )
    order = np.lexsort((keep, img, -scores, label))
    cls_start = np.searchsorted(label[order], np.arange(k_n), side="left")
    cls_end = np.searchsorted(label[order], np.arange(k_n), side="right")
    num_gt = np.zeros((k_n, len(AREA_NAMES)), dtype=np.int64)
    for a in range(len(AREA_NAMES)):
        ok = ~g.ignore & (g.area >= AREA_LO[a]) & (g.area <= AREA_HI[a])
        num_gt[:, a] = np.bincount(g.label[ok], minlength=k_n)
    max_ranks = protocol.coco_max_dets if protocol.name == "coco" else (len(key) + 1,)
    runs = [
        accumulate(
            order,
            cls_start,
            cls_end,
            rank,
            m,
            matched,
            matched_ig,
            area,
            not_exhaustive,
            num_gt,
            AREA_LO,
            AREA_HI,
            REC_THRS,
        )
        for m in max_ranks
    ]
    precision = np.stack([p for p, _ in runs], axis=-1)  # (T, R, K, A, M)
    recall = np.stack([r for _, r in runs], axis=-1)  # (T, K, A, M)
    if protocol.name != "coco":
        precision, recall = precision[..., 0], recall[..., 0]

    stats = summarize(protocol, gt, precision, recall)
    per_class = []
    det_count = np.bincount(label, minlength=k_n)
    for k, c in enumerate(gt.categories):
        p = precision[:, :, k, 0, -1] if protocol.name == "coco" else precision[:, :, k, 0]
        valid = p[p > -1]
        per_class.append(
            {
                "id": c.id,
                "name": c.name,
                "frequency": c.frequency,
                "AP": float(np.mean(valid)) if valid.size else -1.0,
                "num_gt": int(num_gt[k, 0]),
                "detections": int(det_count[k]),
                "image_count": c.image_count,
            }
        )
    return EvalResult(
        protocol,
        stats,
        per_class,
        classes_at_cap,
        len(dets),
        num_after_caps,
        len(key),
        precision,
        recall,
    )


def _mean(s: np.ndarray) -> float:
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(
    protocol: Protocol, gt: AnnotationFile, precision: np.ndarray, recall: np.ndarray
) -> dict[str, float]:
    """The protocol's summary statistics (means over entries > -1, as the official tools)."""
    t50, t75 = int(np.flatnonzero(IOU_THRS == 0.5)[0]), int(np.flatnonzero(IOU_THRS == 0.75)[0])
    a = {name: i for i, name in enumerate(AREA_NAMES)}
    if protocol.name == "coco":
        m = len(protocol.coco_max_dets) - 1
        return {
            "AP": _mean(precision[:, :, :, 0, m]),
            "AP50": _mean(precision[t50, :, :, 0, m]),
            "AP75": _mean(precision[t75, :, :, 0, m]),
            "APs": _mean(precision[:, :, :, a["small"], m]),
            "APm": _mean(precision[:, :, :, a["medium"], m]),
            "APl": _mean(precision[:, :, :, a["large"], m]),
            "AR1": _mean(recall[:, :, 0, 0]),
            "AR10": _mean(recall[:, :, 0, 1]),
            "AR100": _mean(recall[:, :, 0, m]),
            "ARs": _mean(recall[:, :, a["small"], m]),
            "ARm": _mean(recall[:, :, a["medium"], m]),
            "ARl": _mean(recall[:, :, a["large"], m]),
        }
    groups = {f: [k for k, c in enumerate(gt.categories) if c.frequency == f] for f in "rcf"}
    return {
        "AP": _mean(precision[:, :, :, 0]),
        "AP50": _mean(precision[t50, :, :, 0]),
        "AP75": _mean(precision[t75, :, :, 0]),
        "APs": _mean(precision[:, :, :, a["small"]]),
        "APm": _mean(precision[:, :, :, a["medium"]]),
        "APl": _mean(precision[:, :, :, a["large"]]),
        "APr": _mean(precision[:, :, groups["r"], 0]),
        "APc": _mean(precision[:, :, groups["c"], 0]),
        "APf": _mean(precision[:, :, groups["f"], 0]),
        "AR": _mean(recall[:, :, 0]),
        "ARs": _mean(recall[:, :, a["small"]]),
        "ARm": _mean(recall[:, :, a["medium"]]),
        "ARl": _mean(recall[:, :, a["large"]]),
    }
