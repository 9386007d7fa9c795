"""Loading LVIS-sized annotation files: tailseg's reader against lvis-api and pycocotools.

    python benchmarks/annotations_bench.py [--fractions 0.1,0.3,1.0] [--tools tailseg,lvis,coco]
        [--png benchmarks/annotations_growth.png]

For each fraction of LVIS v1 train's size (files from `lvis_like.py`, made once under
benchmarks/.cache), each tool loads the file in a fresh process: `AnnotationFile.load` (parse,
check every field, index by image), `lvis.LVIS(path)` (json.load + its index), and
`pycocotools.coco.COCO(path)` (the same for COCO). Reported: the load's wall time (inside the
process, after imports) and the process's peak RSS (`os.wait4`), and tailseg / peer ratios;
`--png` draws both against the number of instances.

`--workers 1,2,4 [--stores packed,objects]` measures what DataLoader workers cost over the
largest file: each worker is a fork that reads every image's annotations once (boxes and polygon
coordinates, as a worker has after a few epochs of a long run: its share of each epoch's images
differs), from the training dataset's NumPy columns (`packed`: `InstanceDataset`) or from the
`AnnotationFile`'s Python objects (`objects`, what the dataset held before the columns). The
memory of the main process and its workers is summed as PSS from /proc/PID/smaps_rollup while
they are alive; the cost per worker, (PSS with n workers − the main process's PSS before any
reading) / n, is compared with the dataset's own memory (the main process's RSS growth while
building it). Python objects that a worker touches get their reference counts written, so
their pages are copied into the worker ("copy on read"); NumPy arrays are only read.
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


def _smaps(pid: int) -> dict[str, int]:
    """Pss, Private_Clean + Private_Dirty (USS) and Rss of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) * 1024
    uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"pss": fields["Pss"], "uss": uss, "rss": fields["Rss"]}


def workers_worker(path: Path, workers: int, store: str) -> dict:
    """Memory of the main process and `workers` DataLoader workers that each read every image's
    annotations once, from the training dataset (`store="packed"`, `InstanceDataset`'s NumPy
    columns) or from the `AnnotationFile`'s objects (`store="objects"`, as before the columns)."""
    import gc

    import torch

    from tailseg.data import AnnotationFile, InstanceDataset

    AnnotationFile.load(ROOT / "tests" / "data" / "coco_sample43" / "instances.json")  # warm
    torch.zeros(1)
    before = _smaps(os.getpid())["rss"]
    if store == "packed":
        ds = InstanceDataset(path, "/nonexistent", only_annotated=True)  # no pixels read here
        rows = len(ds)

        def read(row: int) -> float:
            total = float(ds.ann.instances(row).boxes.sum())
            for j in range(len(ds.ann.instances(row).ids)):
                total += sum(float(p.sum()) for p in ds.ann.polygon(row, j))
            return total

    else:
        ann = AnnotationFile.load(path)
        images = [im for im in ann.images if ann.anns_by_image[im.id]]
        rows = len(images)

        def read(row: int) -> float:
            total = 0.0
            for a in ann.anns_by_image[images[row].id]:
                total += sum(a.bbox) + sum(float(p.sum()) for p in a.segmentation)
            return total

    gc.collect()
    alone = _smaps(os.getpid())
    dataset_bytes = alone["rss"] - before

    class Touch(torch.utils.data.Dataset):
        """Item w: every image's annotations, read by worker w (items go round-robin)."""

        def __len__(self) -> int:
            return max(workers, 1)

        def __getitem__(self, w: int) -> tuple[int, float]:
            return os.getpid(), sum(read(row) for row in range(rows))

    loader = torch.utils.data.DataLoader(
        Touch(), batch_size=1, num_workers=workers, persistent_workers=workers > 0,
        collate_fn=lambda batch: batch,
    )  # fmt: skip
    pids, check = {os.getpid()}, 0.0
    it = iter(loader)
    for batch in it:
        pids |= {pid for pid, _ in batch}
        check += sum(n for _, n in batch)
    assert len(pids) == workers + (workers > 0) or workers == 0, pids
    mem = [_smaps(pid) for pid in sorted(pids)]  # the workers are still alive
    del it
    return {
        "workers": workers,
        "store": store,
        "dataset_gb": dataset_bytes / 1e9,
        "alone_gb": alone["pss"] / 1e9,  # the main process before any reading
        "pss_gb": sum(m["pss"] for m in mem) / 1e9,
        "uss_gb": sum(m["uss"] for m in mem) / 1e9,
        "checksum": check / max(workers, 1),
    }


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
    ap.add_argument("--workers", help="DataLoader worker counts to measure, e.g. 1,2,4")
    ap.add_argument("--stores", default="packed,objects", help="what the workers read")
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, file = args.worker
        if tool.startswith("workers="):
            n, store = tool.removeprefix("workers=").split(",")
            print(json.dumps(workers_worker(Path(file), int(n), store)))
        else:
            print(json.dumps(worker(tool, Path(file))))
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
    if args.png and rows:
        plot(rows, args.png)
    if args.workers:
        largest = max(float(f) for f in args.fractions.split(","))
        path = ROOT / "benchmarks" / ".cache" / f"lvis_like_{largest:g}.json"
        for store in args.stores.split(","):
            for n in [int(k) for k in args.workers.split(",")]:
                cmd = [sys.executable, __file__, "--worker", f"workers={n},{store}", str(path)]
                row, _ = _child(cmd)
                extra = (row["pss_gb"] - row["alone_gb"]) / n
                print(
                    f"{store:7s} {n} workers: PSS {row['pss_gb']:.2f} GB (main process alone "
                    f"{row['alone_gb']:.2f} GB, dataset {row['dataset_gb']:.2f} GB); per worker "
                    f"+{extra:.3f} GB = {extra / row['dataset_gb']:.1%} of the dataset"
                    f"  [checksum {row['checksum']:.6g}]"
                )


if __name__ == "__main__":
    main()
