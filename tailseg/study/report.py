"""A study's table as `DIR/TABLE.md`, `DIR/TABLE.json` and `DIR/TABLE.png`, rewritten after every
finished run so that a partial study is already readable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tailseg.study.runner import Run
from tailseg.study.stats import Cell, fmt, step
from tailseg.study.table import Table
from tailseg.utils.files import atomic_write_json, atomic_write_text


def _value(metrics: dict[str, Any], key: str) -> float | None:
    section, _, name = key.partition(".")
    v = metrics.get(section, {}).get(name) if isinstance(metrics.get(section), dict) else None
    return None if v is None or v < 0 else 100.0 * v  # -1: no such objects in the split


def summarise(table: Table, runs: list[Run], scale: str) -> dict[str, Any]:
    """The table's numbers: per row, per-seed values, mean ± sd, Δ to the previous row, verdict
    and the report's numbers (percent)."""
    out_rows = []
    prev_cells: list[Cell] | None = None
    prev_report = None
    for row in table.rows:
        mine = [r for r in runs if r.row == row.name]  # a predict table's model is no row
        cells = [
            Cell(
                {
                    r.seed: v
                    for r in mine
                    if r.status == "done" and (v := _value(r.metrics, m)) is not None
                }
            )
            for m in table.metrics
        ]
        entry: dict[str, Any] = {
            "name": row.name,
            "label": row.label,
            "config": str(row.config),
            "overrides": list(row.overrides),
            "runs": {
                str(r.seed): {
                    "status": r.status,
                    "dir": str(r.run_dir),
                    **({"error": r.metrics.get("error", "?")} if r.status == "failed" else {}),
                    **({"log": str(r.log)} if r.status == "failed" and r.log.exists() else {}),
                    **({"seconds": round(r.seconds, 1)} if r.seconds else {}),
                }
                for r in mine
            },
            "metrics": {},
        }
        for j, (metric, cell) in enumerate(zip(table.metrics, cells, strict=True)):
            rep = row.report[j] if row.report else None
            m: dict[str, Any] = {
                "seeds": {str(k): round(v, 4) for k, v in sorted(cell.values.items())},
                "mean": None if cell.mean is None else round(cell.mean, 4),
                "sd": None if cell.sd is None else round(cell.sd, 4),
                "report": rep,
            }
            if prev_cells is not None:
                prep = prev_report[j] if prev_report else None
                s = step(prev_cells[j], cell, prep, rep)
                m.update(
                    delta=None if s.delta is None else round(s.delta, 4),
                    noise=None if s.noise is None else round(s.noise, 4),
                    verdict=s.verdict,
                    report_delta=s.report_delta,
                    agreement=s.agreement,
                )
            entry["metrics"][metric] = m
        out_rows.append(entry)
        prev_cells, prev_report = cells, row.report
    return {
        "table": table.name,
        "title": table.title,
        "scale": scale,
        "metrics": list(table.metrics),
        "model": table.model.name if table.model else None,
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": out_rows,
    }


def _short(metric: str) -> str:
    section, _, name = metric.partition(".")
    return {"segm": "mask ", "bbox": "box ", "challenge2021": "‡ ", "boundary": "bnd "}.get(
        section, section + " "
    ) + name


def markdown(summary: dict[str, Any]) -> str:
    metrics = summary["metrics"]
    head = ["row", *(_short(m) for m in metrics), f"Δ {_short(metrics[0])}", "report Δ", "verdict"]
    lines = [
        f"# {summary['title']}",
        "",
        f"Scale `{summary['scale']}`; mean ± sd over seeds, percent; (report's number); "
        "Δ = paired mean difference to the previous row; a Δ within the larger of the two "
        f"rows' seed spreads is within noise. Updated {summary['updated']}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in summary["rows"]:
        cells = []
        for m in metrics:
            c = row["metrics"][m]
            cell = fmt(Cell({int(k): v for k, v in c["seeds"].items()}))
            if c["report"] is not None:
                cell += f" ({c['report']:.1f})"
            cells.append(cell)
        first = row["metrics"][metrics[0]]
        delta = "" if first.get("delta") is None else f"{first['delta']:+.1f}"
        rdelta = "" if first.get("report_delta") is None else f"{first['report_delta']:+.1f}"
        verdict = first.get("verdict", "")
        if first.get("agreement") in ("agrees", "disagrees"):
            verdict += f", {first['agreement']} with the report"
        failed = [
            f"seed {k} failed ({r['error']}): {r.get('log', 'no log')}"
            for k, r in row["runs"].items()
            if r["status"] == "failed"
        ]
        label = row["label"] + ("".join(f"<br>{f}" for f in failed))
        lines.append("| " + " | ".join([label, *cells, delta, rdelta, verdict]) + " |")
    seeds = sorted({int(k) for row in summary["rows"] for k in row["runs"]})
    lines += ["", f"Seeds: {', '.join(map(str, seeds))}."]
    return "\n".join(lines) + "\n"


def write(out: Path, table: Table, runs: list[Run], scale: str) -> dict[str, Any]:
    """DIR/TABLE.{json,md,png} (curves tables: the per-epoch curves instead of bars)."""
    from tailseg.viz.study import plot_curves_table, plot_table

    summary = summarise(table, runs, scale)
    atomic_write_json(out / f"{table.name}.json", summary, indent=1)
    atomic_write_text(out / f"{table.name}.md", markdown(summary))
    if table.kind == "curves":
        plot_curves_table(table, _histories(table, runs), out / f"{table.name}.png")
    else:
        plot_table(summary, out / f"{table.name}.png")
    return summary


def _histories(table: Table, runs: list[Run]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """row → seed → metrics.jsonl entries (per-epoch evaluations)."""
    out: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in runs:
        path = r.run_dir / "metrics.jsonl"
        if r.model is None and path.exists():
            entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            out.setdefault(r.row, {})[r.seed] = entries
    return out
