"""Predict a split and evaluate it in process (no results json written or parsed)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tailseg.config import Config, InferConfig
from tailseg.data import AnnotationFile, InstanceDataset
from tailseg.data.transforms.common import resize_image, scaled_size
from tailseg.engine.distributed import Dist, gather_objects
from tailseg.evaluation import Detections, evaluate, make_protocol
from tailseg.models.detectors.preprocess import padded_size
from tailseg.structures.detections import InstanceDetections


@torch.no_grad()
def predict_image(model: nn.Module, image: torch.Tensor, infer: InferConfig) -> InstanceDetections:
    """Detections of one uint8 (3, H, W) image, in its own frame (resized to the test scale)."""
    h, w = image.shape[-2:]
    device = next(model.parameters()).device
    resized = resize_image(image, scaled_size(h, w, infer.short_side, infer.max_size))
    (det,) = model([resized.to(device)])
    return det.rescale((h, w))


def canvas_size(image_hw: tuple[int, int], infer: InferConfig) -> tuple[int, int]:
    """The padded (H, W) an image of size `image_hw` is predicted on when alone: its test-scale
    size rounded up to the backbone's stride."""
    return padded_size(*scaled_size(*image_hw, infer.short_side, infer.max_size))


@torch.no_grad()
def predict_batch(
    model: nn.Module, images: list[torch.Tensor], infer: InferConfig
) -> list[InstanceDetections]:
    """Detections of several uint8 (3, H, W) images, each in its own frame, as `predict_image`
    finds them (up to float rounding): one forward per group of images of one `canvas_size`.

    Images of different sizes are not padded together: padding is image content to the
    backbone, so a small image padded to a large one's size gets other features near its
    border (at the test scale of the tiny config, nearly everywhere) and other detections.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(canvas_size(tuple(im.shape[-2:]), infer), []).append(i)
    device = next(model.parameters()).device
    out: dict[int, InstanceDetections] = {}
    for index in groups.values():
        resized = [
            resize_image(im, scaled_size(*im.shape[-2:], infer.short_side, infer.max_size))
            for im in (images[i] for i in index)
        ]
        dets = model([r.to(device) for r in resized])
        for i, d in zip(index, dets, strict=True):
            out[i] = d.rescale(tuple(images[i].shape[-2:]))
    return [out[i] for i in range(len(images))]


@torch.no_grad()
def predict_split(
    model: nn.Module,
    data: InstanceDataset,
    infer: InferConfig,
    d: Dist,
    max_images: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predictions (labels, scores, boxes, RLE masks) of every image, gathered on the main rank
    (an empty list on the others). Rank r predicts images r, r + world, r + 2·world, ...; the
    order of images in the list does not change any metric (ties break by image id)."""
    model.eval()
    n = len(data) if max_images is None else min(max_images, len(data))
    mine = []
    for i in tqdm(
        range(d.rank, n, d.world_size),
        desc="predict",
        disable=not (progress and d.is_main),
        leave=False,
    ):
        det = predict_image(model, data.load_image(i), infer)
        mine.append(prediction_entry(int(data.image_ids[i]), det, infer.mask_threshold))
    parts = gather_objects(d, mine)
    return [p for part in parts for p in part] if parts is not None else []


def prediction_entry(image_id: int, det: InstanceDetections, threshold: float) -> dict[str, Any]:
    """One image's detections as `evaluate_predictions` takes them: tensors on the CPU, masks
    binarised at `threshold` as RLEs."""
    return {
        "image_id": image_id,
        "labels": det.labels.cpu(),
        "scores": det.scores.cpu(),
        "mask_scores": det.segm_scores.cpu(),
        "boxes": det.boxes.cpu(),
        "rles": det.to_rles(threshold),
    }


def evaluate_predictions(
    gt: AnnotationFile, predictions: list[dict[str, Any]], cfg: Config, image_ids: set[int]
) -> dict[str, dict[str, float]]:
    """{"segm": LVIS stats, ..., "challenge2021": AP‡ stats} over the predicted images; boxes
    rank by their scores, masks by their mask scores (Mask Scoring's where predicted)."""
    if len(image_ids) < len(gt.images):  # evaluate on the subset that was predicted
        gt = _subset(gt, image_ids)
    by_box = Detections.from_predictions(gt, predictions)
    by_mask = Detections.from_predictions(gt, predictions, score_key="mask_scores")
    out = {}
    for iou in cfg.eval.iou_types:
        p = make_protocol(cfg.eval.protocol, iou, max_dets_per_image=cfg.eval.max_dets_per_image)
        out[iou] = evaluate(gt, by_box if iou == "bbox" else by_mask, p).stats
    if cfg.eval.challenge:
        out["challenge2021"] = evaluate(gt, by_mask, make_protocol("challenge2021")).stats
    return out


def _subset(gt: AnnotationFile, image_ids: set[int]) -> AnnotationFile:
    return AnnotationFile(
        gt.path,
        [im for im in gt.images if im.id in image_ids],
        gt.categories,
        [a for a in gt.annotations if a.image_id in image_ids],
        gt.skipped,
    )
