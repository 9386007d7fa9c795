"""Pictures of an evaluation: AP by frequency group, per-class AP vs training images, PR curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailseg.evaluation.evaluator import EvalResult
from tailseg.evaluation.protocol import IOU_THRS, REC_THRS
from tailseg.viz.figures import FREQ_COLORS, FREQ_NAMES, plt, save_png


def plot_ap_groups(result: EvalResult, path: Path) -> Path:
    lvis = result.protocol.name != "coco"
    keys = ["AP", "APr", "APc", "APf"] if lvis else ["AP", "APs", "APm", "APl"]
    values = [100 * max(result.stats[k], 0) for k in keys]
    colors = ["#555555"] + (
        [FREQ_COLORS[g] for g in "rcf"] if keys[1] == "APr" else ["#999999"] * 3
    )
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = ax.bar(keys, values, color=colors)
    labels = [
        f"{v:.1f}" if result.stats[k] >= 0 else "n/a" for k, v in zip(keys, values, strict=True)
    ]
    ax.bar_label(bars, labels=labels)  # n/a: an undefined group (e.g. no `frequency` field)
    ax.set_ylabel("AP (%)")
    ax.set_title(f"{result.protocol.name} {result.protocol.iou_type} AP by group")
    ax.set_ylim(0, max([*values, 1]) * 1.15)
    return save_png(fig, path)


def plot_ap_vs_images(result: EvalResult, path: Path) -> Path | None:
    rows = [c for c in result.per_class if c["AP"] >= 0 and c.get("image_count")]
    if not rows:
        return None  # no training-image counts in the ground truth (e.g. COCO)
    fig, ax = plt.subplots(figsize=(6, 4))
    for g in "rcf":
        sel = [c for c in rows if c["frequency"] == g]
        ax.scatter(
            [c["image_count"] for c in sel],
            [100 * c["AP"] for c in sel],
            s=14,
            color=FREQ_COLORS[g],
            label=f"{FREQ_NAMES[g]} ({len(sel)})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class (category image_count)")
    ax.set_ylabel("AP (%)")
    ax.legend(fontsize=8)
    ax.set_title("per-class AP against training frequency")
    return save_png(fig, path)


def plot_pr_curves(result: EvalResult, path: Path) -> Path:
    p = result.precision if result.precision.ndim == 4 else result.precision[..., -1]
    fig, ax = plt.subplots(figsize=(5, 4))
    for thr in (0.5, 0.75):
        t = int(np.flatnonzero(thr == IOU_THRS)[0])
        curves = p[t, :, :, 0]  # (R, K), area all
        valid = curves[0] > -1
        mean = curves[:, valid].mean(axis=1) if valid.any() else np.zeros(len(REC_THRS))
        ax.plot(REC_THRS, mean, label=f"IoU {thr} (AP {100 * mean.mean():.1f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (mean over classes)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title(f"{result.protocol.name} {result.protocol.iou_type} precision-recall")
    return save_png(fig, path)


def write_eval_plots(result: EvalResult, folder: str | Path) -> list[Path]:
    folder = Path(folder)
    out = [
        plot_ap_groups(result, folder / "ap_by_group.png"),
        plot_ap_vs_images(result, folder / "ap_vs_train_images.png"),
        plot_pr_curves(result, folder / "pr_curves.png"),
    ]
    return [p for p in out if p is not None]
