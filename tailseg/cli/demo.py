"""`tailseg demo`: the main job, end to end, on the embedded default (the synthetic benchmark).

Trains the report's whole system (`fuxi2021/final`) at the small scale: the synthetic benchmark,
a CBNetV2 composite of two ResNet-26, HTC with RefineMask and Mask Scoring on the last stage,
Seesaw, RFS, balanced copy-paste and mosaic, EMA and early stopping; evaluates mask AP with
AP_r/c/f and AP‡ every epoch, and draws the best model's predictions on a few val images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailseg.cli.common import load_run_config
from tailseg.config import Config
from tailseg.errors import CheckpointError, TrainingError

DEFAULT = "fuxi2021/final"  # the whole system of the report
# at the small scale: the synthetic benchmark of 600 training images, 2 epochs (a tiny-scale run,
# 240 images, learns too little in its 5 minutes to show: mask AP 4 against 10+)
DEFAULT_SCALE = "small"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job end to end on the synthetic benchmark")
    p.add_argument(
        "config",
        nargs="?",
        default=DEFAULT,
        help=f"config (default: {DEFAULT}, the report's whole system, at --scale small)",
    )
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=2")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--images", type=int, default=6, help="val images to draw predictions on")
    p.add_argument(
        "--scale",
        help="study scale of a report config (tiny, small, full; default: small for the default "
        "config, none for others)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo in --out (else refused)"
    )
    p.set_defaults(func=run)


def draw_predictions(cfg: Config, run_dir: Path, n: int, min_score: float = 0.3) -> list[Path]:
    """Overlays of the best checkpoint's detections (score >= min_score, at most 20)."""
    from tailseg.data import InstanceDataset
    from tailseg.engine import checkpoint
    from tailseg.engine.evaluate import predict_image
    from tailseg.models.build import build_model
    from tailseg.viz.figures import plt, save_png
    from tailseg.viz.overlay import draw_instances

    state = checkpoint.load(run_dir / "best.pt")
    model = build_model(cfg.model, cfg.infer)
    checkpoint.load_weights(model, state["model"], run_dir / "best.pt")
    model.eval()
    val = InstanceDataset(run_dir / "data" / "val.json", run_dir / "data" / "images")
    names = [c.name for c in val.ann.categories]
    out = []
    for i in range(min(n, len(val))):
        image = val.load_image(i)
        det = predict_image(model, image, cfg.infer)
        keep = det.top(min_score, 20)
        masks = det.bitmaps(keep, cfg.infer.mask_threshold)
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
        t = val.targets(i)
        draw_instances(axes[0], image, t.boxes, t.masks, t.labels, names)
        axes[0].set_title(f"ground truth · image {int(val.image_ids[i])}", fontsize=8)
        draw_instances(
            axes[1], image, det.boxes[keep], masks, det.labels[keep], names, det.segm_scores[keep]
        )
        axes[1].set_title(f"prediction (score ≥ {min_score})", fontsize=8)
        out.append(save_png(fig, run_dir / "predictions" / f"{int(val.image_ids[i]):012d}.png"))
    return out


def run(args: argparse.Namespace) -> int:
    from tailseg.data import AnnotationFile
    from tailseg.data.stats import dataset_stats
    from tailseg.engine.trainer import train
    from tailseg.viz.longtail import plot_long_tail

    if "=" in args.config and not Path(args.config).exists():  # `tailseg demo train.seed=1`
        args.overrides, args.config = [args.config, *args.overrides], DEFAULT
    scale = args.scale or (DEFAULT_SCALE if args.config == DEFAULT else None)
    cfg = load_run_config(args.config, args.overrides, scale)
    if cfg.data.synth is None:
        raise SystemExit("error: the demo needs data.synth in its config")
    out = Path(args.out)
    try:
        final = train(
            cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
        )
    except (TrainingError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    tail = plot_long_tail(
        dataset_stats(AnnotationFile.load(out / "data" / "train.json")), out / "train_long_tail.png"
    )
    pictures = draw_predictions(cfg, out, args.images)
    segm, apdd = final.get("segm", {}), final.get("challenge2021", {})
    print(
        f"\nbest epoch {final.get('best_epoch')} of {final.get('epochs_run')}: mask AP "
        f"{100 * segm.get('AP', 0):.1f} (APr {100 * segm.get('APr', 0):.1f}, APc "
        f"{100 * segm.get('APc', 0):.1f}, APf {100 * segm.get('APf', 0):.1f}), AP‡ "
        f"{100 * apdd.get('AP', 0):.1f}"
    )
    print("written:")
    for name, path in [
        ("config", out / "config.yaml"),
        ("data", out / "data"),
        ("long tail", tail),
        ("checkpoints", out / "best.pt"),
        ("", out / "last.pt"),
        ("per-epoch metrics", out / "metrics.jsonl"),
        ("curves", out / "curves.png"),
        ("final metrics", out / "metrics.json"),
        ("predictions", pictures[0].parent if pictures else ""),
    ]:
        print(f"  {name:<18}{path}")
    return 0
