"""Predicting image folders or an annotated split into an LVIS/COCO results file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from tailseg.config import Config
from tailseg.data import AnnotationFile, DataError
from tailseg.data.annotations import Category, OutsideRootError
from tailseg.data.dataset import read_image
from tailseg.data.synth import synth_categories
from tailseg.engine import checkpoint
from tailseg.engine.evaluate import canvas_size, predict_batch, predict_image
from tailseg.inference.tta import tta_detect
from tailseg.models.build import build_model
from tailseg.models.detectors.htc import HybridTaskCascade
from tailseg.structures.detections import InstanceDetections

log = logging.getLogger("tailseg.inference")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PENDING_BATCHES = 4  # predict_images holds at most this many batches of images at once


@dataclass
class InputImage:
    image_id: int
    path: Path
    expected_hw: tuple[int, int] | None = None


def load_model(
    cfg: Config, checkpoint_path: str | Path, device: torch.device
) -> tuple[HybridTaskCascade, list[Category] | None]:
    """The config's model with a checkpoint's `model` weights (best.pt holds the EMA weights),
    and the categories of its labels stored with it (None in checkpoints that predate them)."""
    state = checkpoint.load(checkpoint_path)
    model = build_model(cfg.model, cfg.infer)
    checkpoint.load_weights(model, state["model"], checkpoint_path)
    categories = stored_categories(state, checkpoint_path, cfg.model.num_classes)
    return model.to(device).eval(), categories


def stored_categories(
    state: dict[str, Any], path: str | Path, num_classes: int
) -> list[Category] | None:
    """A checkpoint's `categories` ([{"id", "name"}], one per label), checked."""
    raw = state.get("categories")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("id"), int)
        and not isinstance(c["id"], bool)
        and isinstance(c.get("name"), str)
        for c in raw
    ):
        raise checkpoint.CheckpointError(
            f"{path}: categories: expected a list of {{'id': int, 'name': str}}"
        )
    if len(raw) != num_classes:
        raise checkpoint.CheckpointError(
            f"{path}: categories: {len(raw)} stored, the config's model has {num_classes} classes"
        )
    if len({c["id"] for c in raw}) != len(raw):
        raise checkpoint.CheckpointError(f"{path}: categories: repeated category ids")
    return [Category(c["id"], c["name"]) for c in raw]


def fallback_categories(cfg: Config, checkpoint_path: str | Path) -> list[Category]:
    """Categories for a checkpoint that stores none: the config's dataset (synthetic benchmark,
    val or train json) when it has as many as the model, else 1..C named by number (warned)."""
    n = cfg.model.num_classes
    found: list[Category] | None = None
    source = ""
    if cfg.data.synth is not None:
        found = [Category(i, name) for i, name in synth_categories(cfg.data.synth)]
        source = "the config's data.synth"
    else:
        for split in ("val", "train"):
            path = Path(getattr(cfg.data, split).json)
            if getattr(cfg.data, split).json and path.is_file():
                found, source = AnnotationFile.load(path, allow_empty=True).categories, str(path)
                break
    if found is not None and len(found) == n:
        log.warning(
            "%s: no categories stored (an older checkpoint); using those of %s",
            checkpoint_path,
            source,
        )
        return found
    log.warning(
        "%s: no categories stored (an older checkpoint) and the config names no dataset with %d "
        "categories: results use category ids 1..%d and overlays show those numbers",
        checkpoint_path,
        n,
        n,
    )
    return [Category(i + 1, str(i + 1)) for i in range(n)]


def images_from_paths(paths: list[str]) -> list[InputImage]:
    """Files, or every image file of folders (sorted); ids 1, 2, ... in that order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    if not files:
        raise DataError(f"{', '.join(paths)}: no images found")
    return [InputImage(i + 1, f) for i, f in enumerate(files)]


def images_from_dataset(
    gt: AnnotationFile, root: str | Path, allow_outside_root: bool = False
) -> list[InputImage]:
    """Every image of `gt` under `root`; a missing file is warned about (and skipped when read),
    a path that leaves `root` is an error (`OutsideRootError`) unless `allow_outside_root`."""
    out = []
    for im in gt.images:
        try:
            path = gt.image_path(im, root, allow_outside_root=allow_outside_root)
        except OutsideRootError:
            raise
        except DataError as e:
            log.warning("%s", e)
            path = Path(root) / (im.file_name or f"missing-{im.id}")
        out.append(InputImage(im.id, path, (im.height, im.width)))
    return out


def detect(model: HybridTaskCascade, image: Tensor, cfg: Config) -> InstanceDetections:
    infer = cfg.infer
    if not infer.tta:
        return predict_image(model, image, infer)
    scales = [tuple(s) for s in infer.tta_scales] or [(infer.max_size, infer.short_side)]
    return tta_detect(model, image, scales, infer.tta_flip, infer.tta_hold_features)


def results_of(
    det: InstanceDetections, image_id: int, category_ids: list[int], threshold: float
) -> list[dict[str, Any]]:
    """LVIS/COCO results entries: RLE mask, xywh box, score, category id. With Mask Scoring,
    `score` is the mask score (what segm and boundary AP rank by) and `bbox_score` the box's."""
    rles = det.to_rles(threshold)
    box_scores = det.scores.tolist() if det.mask_scores is not None else [None] * len(det)
    out = []
    for box, score, box_score, label, rle in zip(
        det.boxes.tolist(),
        det.segm_scores.tolist(),
        box_scores,
        det.labels.tolist(),
        rles,
        strict=True,
    ):
        x0, y0, x1, y1 = box
        entry = {
            "image_id": image_id,
            "category_id": category_ids[label],
            "score": round(float(score), 6),
            "segmentation": rle,
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        }
        if box_score is not None:
            entry["bbox_score"] = round(float(box_score), 6)
        out.append(entry)
    return out


def predict_images(
    model: HybridTaskCascade,
    inputs: list[InputImage],
    cfg: Config,
    category_ids: list[int],
    progress: bool = True,
    on_image: Any = None,
    batch_size: int = 1,
) -> tuple[list[dict[str, Any]], list[str]]:
    """(results entries in input order, one line per skipped image). `on_image(input, image,
    det)` is called for every image, in the order they are predicted.

    Plain inference runs up to `batch_size` images of one canvas size per forward (see
    `predict_batch`: results do not depend on the batch size); images wait for companions of
    their size while at most `PENDING_BATCHES` batches' worth are held. TTA runs one at a time.
    """
    skipped: list[str] = []
    found: dict[int, list[dict[str, Any]]] = {}
    tta = cfg.infer.tta
    step = 1 if tta else max(1, batch_size)
    pending: dict[tuple[int, int], list[tuple[int, InputImage, Tensor]]] = {}
    bar = tqdm(total=len(inputs), desc="predict", disable=not progress)

    def run(group: list[tuple[int, InputImage, Tensor]]) -> None:
        images = [image for _, _, image in group]
        if tta:
            dets = [detect(model, image, cfg) for image in images]
        else:
            dets = predict_batch(model, images, cfg.infer)
        for (k, item, image), det in zip(group, dets, strict=True):
            found[k] = results_of(det, item.image_id, category_ids, cfg.infer.mask_threshold)
            if on_image is not None:
                on_image(item, image, det)
        bar.update(len(group))

    for k, item in enumerate(inputs):
        try:
            image = read_image(item.path, item.expected_hw)
        except DataError as e:
            skipped.append(str(e))
            log.warning("skipped: %s", e)
            bar.update(1)
            continue
        key = canvas_size(tuple(image.shape[-2:]), cfg.infer)
        pending.setdefault(key, []).append((k, item, image))
        if len(pending[key]) >= step:
            run(pending.pop(key))
        elif sum(map(len, pending.values())) >= PENDING_BATCHES * step:
            run(pending.pop(max(pending, key=lambda c: len(pending[c]))))
    for group in pending.values():
        run(group)
    bar.close()
    return [r for k in sorted(found) for r in found[k]], skipped
