"""The long-tail picture of a dataset: instances and images per class, coloured by r/c/f."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import Patch

from tailseg.viz.figures import FREQ_COLORS, FREQ_NAMES, plt, save_png


def plot_long_tail(stats: dict[str, Any], path: str | Path) -> Path:
    """Two log-scale panels over classes sorted by instance count (from `dataset_stats`)."""
    cats = sorted(stats["per_category"], key=lambda c: (-c["instances"], c["id"]))
    cats = [c for c in cats if c["instances"] > 0]
    x = np.arange(len(cats))
    colors = [FREQ_COLORS[c["frequency"]] for c in cats]
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for ax, key in zip(axes, ("instances", "images"), strict=True):
        ax.bar(x, [c[key] for c in cats], color=colors, width=1.0, linewidth=0)
        ax.set_yscale("log")
        ax.set_ylabel(f"{key} per class")
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[1].axhline(10, color="grey", lw=0.8, ls="--", label="10 images (LVIS rare limit)")
    axes[1].legend(loc="upper right", fontsize=8)
    handles = [
        Patch(
            color=color,
            label=f"{FREQ_NAMES[g]} ({g}): {stats['frequency'][g]['classes_present']} classes, "
            f"{stats['frequency'][g]['instances']} instances",
        )
        for g, color in FREQ_COLORS.items()
    ]
    axes[0].legend(handles=handles, loc="upper right", fontsize=8)
    axes[1].set_xlabel(f"classes sorted by instance count ({len(cats)} with instances)")
    if len(cats) <= 60:
        axes[1].set_xticks(x, [c["name"] for c in cats], rotation=90, fontsize=6)
    axes[0].set_title(
        f"{Path(stats['file']).name}: {stats['images']} images, {stats['instances']} instances, "
        f"{stats['categories']} categories"
    )
    return save_png(fig, path)
