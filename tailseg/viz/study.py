"""Pictures of a study: a table's rows as bars beside the report's, and Figure 1's curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tailseg.viz.figures import FREQ_COLORS, plt, save_png

if TYPE_CHECKING:
    from tailseg.study.table import Table

_COLORS = {"AP": "black", "APr": FREQ_COLORS["r"], "APc": FREQ_COLORS["c"], "APf": FREQ_COLORS["f"]}


def plot_table(summary: dict[str, Any], path: str | Path) -> Path:
    """One panel per metric: each row's mean ± sd over seeds (bars, seeds as dots), and the
    report's number for the row on a second axis (diamonds): the shapes compare, the scales differ
    (a synthetic benchmark is not LVIS)."""
    metrics, rows = summary["metrics"], summary["rows"]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(2.2 + 2.6 * len(metrics), 3.6), squeeze=False
    )
    x = list(range(len(rows)))
    for ax, metric in zip(axes[0], metrics, strict=True):
        means = [r["metrics"][metric]["mean"] for r in rows]
        sds = [r["metrics"][metric]["sd"] or 0.0 for r in rows]
        ax.bar(x, [m or 0.0 for m in means], yerr=sds, color="#9ecae1", capsize=3, label="ours")
        for i, r in enumerate(rows):
            seeds = list(r["metrics"][metric]["seeds"].values())
            ax.plot([i] * len(seeds), seeds, "k.", ms=4)
        ax.set_title(metric, fontsize=9)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("ours (%)", fontsize=8)
        report = [r["metrics"][metric]["report"] for r in rows]
        if any(v is not None for v in report):
            twin = ax.twinx()
            pts = [(i, v) for i, v in enumerate(report) if v is not None]
            twin.plot(*zip(*pts, strict=True), "D--", color="#d62728", ms=5, label="report")
            twin.set_ylabel("report (%)", fontsize=8, color="#d62728")
            twin.tick_params(axis="y", colors="#d62728", labelsize=7)
    fig.suptitle(f"{summary['title']} · scale {summary['scale']}", fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)


def plot_curves_table(
    table: Table, histories: dict[str, dict[int, list[dict[str, Any]]]], path: str | Path
) -> Path:
    """The report's Figure 1: one panel per row, each metric's per-epoch curve (mean over seeds,
    the band their range)."""
    fig, axes = plt.subplots(1, len(table.rows), figsize=(5 * len(table.rows), 3.8), squeeze=False)
    for ax, row in zip(axes[0], table.rows, strict=True):
        runs = histories.get(row.name, {})
        for metric in table.metrics:
            by_epoch: dict[int, list[float]] = {}
            for entries in runs.values():
                for e in entries:
                    if e.get(metric, -1) >= 0:
                        by_epoch.setdefault(e["epoch"], []).append(100 * e[metric])
            if not by_epoch:
                continue
            epochs = sorted(by_epoch)
            mean = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
            name = metric.partition(".")[2]
            color = _COLORS.get(name)
            ax.plot(epochs, mean, "o-", ms=3, color=color, label=name)
            ax.fill_between(
                epochs,
                [min(by_epoch[e]) for e in epochs],
                [max(by_epoch[e]) for e in epochs],
                color=color,
                alpha=0.15,
            )
        ax.set_title(f"{row.label} ({len(runs)} seeds)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("AP (%)")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(table.title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
