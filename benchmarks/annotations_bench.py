"""Loading LVIS-sized annotation files: tailseg's reader against lvis-api and pycocotools.

    python benchmarks/annotations_bench.py [--fractions 0.1,0.3,1.0] [--tools tailseg,lvis,coco]
        [--png benchmarks/annotations_growth.png]

For each fraction of LVIS v1 train's size (files from `lvis_like.py`, made once under
benchmarks/.cache), each tool loads the file in a fresh process: `AnnotationFile.load` (parse,
check every field, index by image), `lvis.LVIS(path)` (json.load + its index), and
`pycocotools.coco.COCO(path)` (the same for COCO). Reported: the load's wall time (inside the
process, after imports) and the process's peak RSS (`os.wait4`), and tailseg / peer ratios;
`--png` draws both against the number of instances.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def worker(tool: str, path: Path) -> dict:
    if tool == "tailseg":
        from tailseg.data import AnnotationFile

        start = time.perf_counter()
        ann = AnnotationFile.load(path)
        seconds = time.perf_counter() - start
        n = len(ann.annotations)
    elif tool == "lvis":
        from lvis import LVIS

        start = time.perf_counter()
        ann = LVIS(str(path))
        seconds = time.perf_counter() - start
        n = len(ann.anns)
    elif tool == "coco":
        from pycocotools.coco import COCO

        start = time.perf_counter()
        ann = COCO(str(path))
        seconds = time.perf_counter() - start
        n = len(ann.anns)
    else:
        raise SystemExit(f"unknown tool {tool}")
    return {"tool": tool, "seconds": seconds, "instances": n}


def _child(cmd: list[str]) -> tuple[dict, float]:
    """The child's last stdout line (json) and its peak RSS in GB."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError((err.read().strip().splitlines() or ["?"])[-1])
        return json.loads(out.read().strip().splitlines()[-1]), usage.ru_maxrss / 1024**2


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for tool in sorted({r["tool"] for r in rows}):
        mine = sorted((r for r in rows if r["tool"] == tool), key=lambda r: r["instances"])
        x = [r["instances"] / 1e6 for r in mine]
        axes[0].plot(x, [r["seconds"] for r in mine], "o-", label=tool)
        axes[1].plot(x, [r["peak_rss_gb"] for r in mine], "o-", label=tool)
    axes[0].set_ylabel("load time (s)")
    axes[1].set_ylabel("peak RSS (GB)")
    for ax in axes:
        ax.set_xlabel("instances (millions; LVIS v1 train = 1.27)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Loading LVIS-shaped annotation files (2 CPU cores)", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"picture: {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fractions", default="0.1,0.3,1.0")
    ap.add_argument("--tools", default="tailseg,lvis,coco")
    ap.add_argument("--png", type=Path)
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return
    from lvis_like import generate

    rows = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        path = ROOT / "benchmarks" / ".cache" / f"lvis_like_{fraction:g}.json"
        if not path.exists():
            t = time.perf_counter()
            generate(fraction, path)
            print(f"made {path.name} in {time.perf_counter() - t:.0f} s")
        size = path.stat().st_size / 1e9
        for tool in args.tools.split(","):
            try:
                row, peak = _child([sys.executable, __file__, "--worker", tool, str(path)])
            except RuntimeError as e:
                print(f"{fraction:5g} {tool:8s} not run: {e}")
                continue
            row.update(fraction=fraction, file_gb=size, peak_rss_gb=peak)
            rows.append(row)
            print(
                f"{fraction:5g} ({size:4.2f} GB, {row['instances']:>9,} instances) {tool:8s}"
                f" {row['seconds']:7.1f} s  {peak:5.2f} GB"
            )
        ours = next((r for r in rows if r["tool"] == "tailseg" and r["fraction"] == fraction), None)
        for r in rows:
            if ours and r["fraction"] == fraction and r["tool"] != "tailseg":
                print(
                    f"      ratio tailseg/{r['tool']}: time {ours['seconds'] / r['seconds']:.2f}"
                    f"  peak RSS {ours['peak_rss_gb'] / r['peak_rss_gb']:.2f}"
                )
    if args.png:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
