"""`tailseg predict CONFIG --checkpoint CKPT (--images ... | --dataset GT.json) --out DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tailseg.cli.common import load_run_config
from tailseg.errors import CheckpointError, DataError
from tailseg.utils.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from tailseg.data import AnnotationFile
    from tailseg.data.annotations import Category


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict images or a split; results json, overlays, AP")
    p.add_argument("config", help="config path or name under tailseg/configs/")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. infer.max_per_img=1000")
    p.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="image files or folders")
    src.add_argument("--dataset", help="annotation json whose images are predicted and evaluated")
    p.add_argument("--image-root", help="folder of --dataset's images (default: beside it/images)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--tta",
        action="store_true",
        help="multi-scale + flip TTA at the config's infer.tta_scales / infer.tta_flip (the LVIS "
        "configs carry the report's); the same as infer.tta=true",
    )
    p.add_argument("--draw", action="store_true", help="write an overlay PNG per image")
    p.add_argument("--score-threshold", type=float, default=0.3, help="overlays: min score")
    p.add_argument("--topk", type=int, default=30, help="overlays: at most this many")
    p.add_argument("--protocol", choices=["coco", "lvis", "challenge2021"], default="lvis")
    p.add_argument("--iou-type", choices=["segm", "bbox", "boundary"])
    p.add_argument("--batch-size", type=int, default=2, help="images per forward (no TTA)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def check_categories(
    dataset: str,
    gt: AnnotationFile,
    stored: list[Category] | None,
    num_classes: int,
    checkpoint: str,
) -> None:
    """DataError unless `dataset`'s categories are the checkpoint's, label for label (or, for a
    checkpoint that stores none, as many as the model has)."""
    if stored is None:
        if len(gt.categories) != num_classes:
            raise DataError(
                f"{dataset}: categories: {len(gt.categories)}, the model has {num_classes} classes"
            )
        return
    ours = [c.id for c in stored]
    if gt.category_ids == ours:
        return
    if len(gt.category_ids) != len(ours):
        problem = f"{len(gt.category_ids)} categories, the checkpoint's model has {len(ours)}"
    else:
        k = next(i for i, (a, b) in enumerate(zip(gt.category_ids, ours, strict=True)) if a != b)
        problem = f"label {k} is category id {gt.category_ids[k]} here, {ours[k]} in the checkpoint"
    raise DataError(f"{dataset}: categories: not those {checkpoint} was trained on ({problem})")


def run(args: argparse.Namespace) -> int:
    import torch

    from tailseg.data import AnnotationFile
    from tailseg.evaluation import evaluate, from_results, make_protocol
    from tailseg.evaluation.report import format_result
    from tailseg.inference.predict import (
        fallback_categories,
        images_from_dataset,
        images_from_paths,
        load_model,
        predict_images,
    )
    from tailseg.viz.figures import plt, save_png
    from tailseg.viz.overlay import draw_instances

    overrides = list(args.overrides)
    if args.tta:
        overrides += ["infer.tta=true"]
    cfg = load_run_config(args.config, overrides)
    out = Path(args.out)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model, categories = load_model(cfg, args.checkpoint, device)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gt = None
    if args.dataset:
        gt = AnnotationFile.load(args.dataset, keep_degenerate=True)
        root = args.image_root or Path(args.dataset).parent / "images"
        check_categories(args.dataset, gt, categories, cfg.model.num_classes, args.checkpoint)
        inputs = images_from_dataset(gt, root, cfg.data.allow_outside_root)
        categories = gt.categories
    else:
        inputs = images_from_paths(args.images)
        if categories is None:
            categories = fallback_categories(cfg, args.checkpoint)
        atomic_write_json(
            out / "images.json", [{"id": i.image_id, "file": str(i.path)} for i in inputs], indent=1
        )
    category_ids = [c.id for c in categories]
    names = [c.name for c in categories]

    def draw(item, image, det) -> None:
        keep = det.top(args.score_threshold, args.topk)
        masks = det.bitmaps(keep, cfg.infer.mask_threshold)
        fig, ax = plt.subplots(figsize=(6, 6 * image.shape[-2] / image.shape[-1]))
        scores = det.segm_scores[keep]
        draw_instances(ax, image, det.boxes[keep], masks, det.labels[keep], names, scores)
        save_png(fig, out / "overlays" / f"{item.image_id:012d}.png")

    results, skipped = predict_images(
        model,
        inputs,
        cfg,
        category_ids,
        not args.no_progress,
        draw if args.draw else None,
        args.batch_size,
    )
    atomic_write_json(out / "results.json", results)
    print(
        f"results: {out / 'results.json'} ({len(results)} detections, "
        f"{len(inputs) - len(skipped)} images)"
    )
    if skipped:
        atomic_write_text(out / "skipped.txt", "\n".join(skipped) + "\n")
        print(f"skipped {len(skipped)} unreadable images: {out / 'skipped.txt'}")
    if gt is not None:
        protocol = make_protocol(args.protocol, args.iou_type)
        predicted = {r["image_id"] for r in results}
        dets = from_results(
            results,
            gt,
            need_masks=protocol.iou_type != "bbox",
            box_scores=protocol.iou_type == "bbox",
        )
        result = evaluate(gt, dets, protocol)
        print(format_result(result))
        atomic_write_json(out / "metrics.json", result.to_json(), indent=1)
        print(f"metrics: {out / 'metrics.json'} ({len(predicted)} images with detections)")
    return 0
