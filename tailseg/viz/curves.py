"""Training curves: AP, APr, APc, APf (and AP‡) and the losses, per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailseg.viz.figures import FREQ_COLORS, plt, save_png


def plot_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """rows: metrics.jsonl entries with `epoch`, `loss` and e.g. `segm.AP`, `segm.APr`, ..."""
    epochs = [r["epoch"] for r in rows]
    fig, (ax_ap, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    series = [
        ("segm.AP", "mask AP", "black", "-"),
        ("segm.APr", "APr", FREQ_COLORS["r"], "-"),
        ("segm.APc", "APc", FREQ_COLORS["c"], "-"),
        ("segm.APf", "APf", FREQ_COLORS["f"], "-"),
        ("challenge2021.AP", "AP‡", "grey", "--"),
    ]
    for key, label, color, style in series:
        pts = [(e, 100 * r[key]) for e, r in zip(epochs, rows, strict=True) if r.get(key, -1) >= 0]
        if pts:
            ax_ap.plot(*zip(*pts, strict=True), style, color=color, marker="o", ms=3, label=label)
    ax_ap.set_xlabel("epoch")
    ax_ap.set_ylabel("AP (%)")
    ax_ap.legend(fontsize=8)
    ax_ap.grid(alpha=0.3)
    loss_keys = sorted({k for r in rows for k in r if k.startswith("loss")})
    for key in loss_keys:
        pts = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
        ax_loss.plot(*zip(*pts, strict=True), marker="o", ms=3, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean training loss")
    ax_loss.legend(fontsize=7)
    ax_loss.grid(alpha=0.3)
    for ax in (ax_ap, ax_loss):
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)
