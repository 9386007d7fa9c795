"""Predict a split and evaluate it in process (no results json written or parsed)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tailseg.config import Config, InferConfig
from tailseg.data import AnnotationFile, InstanceDataset
from tailseg.data.transforms.common import resize_image, scaled_size
from tailseg.engine.distributed import Dist, all_gather_objects
from tailseg.evaluation import Detections, evaluate, make_protocol
from tailseg.structures.detections import InstanceDetections


@torch.no_grad()
def predict_image(model: nn.Module, image: torch.Tensor, infer: InferConfig) -> InstanceDetections:
    """Detections of one uint8 (3, H, W) image, in its own frame (resized to the test scale)."""
    h, w = image.shape[-2:]
    device = next(model.parameters()).device
    resized = resize_image(image, scaled_size(h, w, infer.short_side, infer.max_size))
    (det,) = model([resized.to(device)])
    return det.rescale((h, w))


@torch.no_grad()
def predict_batch(
    model: nn.Module, images: list[torch.Tensor], infer: InferConfig
) -> list[InstanceDetections]:
    """Detections of several uint8 (3, H, W) images in one forward, each in its own frame."""
    if not images:
        return []
    device = next(model.parameters()).device
    resized = [
        resize_image(im, scaled_size(*im.shape[-2:], infer.short_side, infer.max_size)).to(device)
        for im in images
    ]
    dets = model(resized)
    return [d.rescale(tuple(im.shape[-2:])) for d, im in zip(dets, images, strict=True)]


@torch.no_grad()
def predict_split(
    model: nn.Module,
    data: InstanceDataset,
    infer: InferConfig,
    d: Dist,
    max_images: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predictions (labels, scores, boxes, RLE masks) of every image, gathered on every rank."""
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
        mine.append(
            {
                "image_id": data.images[i].id,
                "labels": det.labels.cpu(),
                "scores": det.scores.cpu(),
                "boxes": det.boxes.cpu(),
                "rles": det.to_rles(infer.mask_threshold),
            }
        )
    return [p for part in all_gather_objects(d, mine) for p in part]


def evaluate_predictions(
    gt: AnnotationFile, predictions: list[dict[str, Any]], cfg: Config, image_ids: set[int]
) -> dict[str, dict[str, float]]:
    """{"segm": LVIS stats, ..., "challenge2021": AP‡ stats} over the predicted images."""
    if len(image_ids) < len(gt.images):  # evaluate on the subset that was predicted
        gt = _subset(gt, image_ids)
    dets = Detections.from_predictions(gt, predictions)
    out = {}
    for iou in cfg.eval.iou_types:
        p = make_protocol(cfg.eval.protocol, iou, max_dets_per_image=cfg.eval.max_dets_per_image)
        out[iou] = evaluate(gt, dets, p).stats
    if cfg.eval.challenge:
        out["challenge2021"] = evaluate(gt, dets, make_protocol("challenge2021")).stats
    return out


def _subset(gt: AnnotationFile, image_ids: set[int]) -> AnnotationFile:
    return AnnotationFile(
        gt.path,
        [im for im in gt.images if im.id in image_ids],
        gt.categories,
        [a for a in gt.annotations if a.image_id in image_ids],
        gt.skipped,
    )
