"""Evaluation speed and memory: tailseg against faster-coco-eval (and vernier) in the same run.

    python benchmarks/eval_bench.py [--images 1000 --dets 1000] [--tools tailseg,faster,vernier]

Generates (once, cached under benchmarks/.cache) a synthetic LVIS v1 set: the 1,203 real
categories with their r/c/f split, `--images` images of about 256 px with 3–12 star-shaped
instances each (classes drawn by real training frequency), federated labels, and exactly
`--dets` detections per image (0–3 jittered hits per instance, some with a confused class, the
rest low-scoring junk in positive, negative and unlabelled classes). Then each tool runs in a
fresh process (so peak RSS is its own) on two tasks, timing json loading + evaluation:

- `mask300`: LVIS mask AP, 300 detections per image;
- `apdd`: AP‡ (boundary IoU, top 10,000 per class, no per-image cap).

Peers get the caps applied beforehand by the same code (inside their timing), as in the
eval_fixtures cross-checks. Every tool prints its AP, so agreement is visible; ratios are
tailseg / peer (below 1 = tailseg faster or smaller).

`--cli` measures what a user waits for instead: each tool's whole process from the outside,
interpreter start-up and imports included, tailseg through its command line (`tailseg eval
--protocol challenge2021|lvis`), the peers through the same worker as above; peak RSS is the
child's own (`os.wait4`). It also times `tailseg --help` (fastest of 5) beside a bare
`python -c pass`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
SIZES = [(256, 256), (240, 320), (320, 240), (200, 300)]


def _star(rng: np.random.Generator, cx: float, cy: float, r: float, h: int, w: int) -> list:
    n = int(rng.integers(5, 11))
    t = np.sort(rng.uniform(0, 2 * math.pi, n))
    rr = r * rng.uniform(0.5, 1.0, n)
    pts = np.stack([np.clip(cx + rr * np.cos(t), 0, w), np.clip(cy + rr * np.sin(t), 0, h)], 1)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def generate(images: int, dets: int, seed: int = 0) -> tuple[Path, Path]:
    import pycocotools.mask as mask_utils

    from tailseg.data.synth.classes import lvis_v1_categories

    folder = CACHE / f"lvis_synth_i{images}_d{dets}_s{seed}"
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    if gt_path.exists() and dt_path.exists():
        return gt_path, dt_path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cats = lvis_v1_categories()
    cat_ids = np.array([c["id"] for c in cats])
    weight = np.array([c["image_count"] for c in cats], dtype=np.float64)
    weight /= weight.sum()
    gt_images, gt_anns, results = [], [], []
    for i in range(1, images + 1):
        h, w = SIZES[int(rng.integers(len(SIZES)))]
        n = int(rng.integers(3, 13))
        classes = rng.choice(cat_ids, size=n, p=weight)
        polys = [
            _star(rng, rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 60), h, w)
            for _ in range(n)
        ]
        rles = mask_utils.frPyObjects(polys, h, w)
        present = sorted(set(classes.tolist()))
        absent = np.setdiff1d(cat_ids, present)
        neg = sorted(rng.choice(absent, size=5, replace=False).tolist())
        ne = [int(rng.choice(present))] if rng.random() < 0.1 else []
        gt_images.append(
            {
                "id": i,
                "height": h,
                "width": w,
                "file_name": f"{i:012d}.jpg",
                "neg_category_ids": neg,
                "not_exhaustive_category_ids": ne,
            }
        )
        for p, c, rle in zip(polys, classes.tolist(), rles, strict=True):
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i,
                    "category_id": c,
                    "segmentation": [p],
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                }
            )
        det_polys, det_cls, det_scores = [], [], []
        for p, c in zip(polys, classes.tolist(), strict=True):
            for _ in range(int(rng.integers(0, 4))):
                q = (np.array(p) + rng.normal(0, 2.0, len(p))).clip(0, max(h, w)).tolist()
                det_polys.append(q)
                det_cls.append(c if rng.random() > 0.1 else int(rng.choice(cat_ids)))
                det_scores.append(rng.uniform(0.3, 1.0))
        pool = np.concatenate([np.array(present), np.array(neg), rng.choice(cat_ids, 20)])
        while len(det_polys) < dets:
            r = rng.uniform(4, 40)
            det_polys.append(_star(rng, rng.uniform(0, w), rng.uniform(0, h), r, h, w))
            det_cls.append(int(rng.choice(pool)))
            det_scores.append(rng.uniform(0.0, 0.5))
        for rle, c, s in zip(
            mask_utils.frPyObjects(det_polys[:dets], h, w), det_cls, det_scores, strict=False
        ):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(c),
                    "score": round(float(s), 8),
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                }
            )
    counts: dict[int, set] = defaultdict(set)
    for a in gt_anns:
        counts[a["category_id"]].add(a["image_id"])
    categories = [
        {
            "id": c["id"],
            "name": c["name"],
            "frequency": c["frequency"],
            "image_count": c["image_count"],
            "instance_count": c["instance_count"],
            "synonyms": [c["name"]],
            "synset": c["synset"],
            "def": "",
        }
        for c in cats
    ]
    gt = {
        "info": {},
        "licenses": [],
        "images": gt_images,
        "annotations": gt_anns,
        "categories": categories,
    }
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(results))
    for r in results:  # vernier requires a bbox in every result
        r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
    (folder / "dt_bbox.json").write_text(json.dumps(results))
    return gt_path, dt_path


def _top_per(results: list[dict], key: str, k: int) -> list[dict]:
    groups: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        groups[r[key]].append(r)
    out = []
    for rs in groups.values():
        out += sorted(rs, key=lambda r: r["score"], reverse=True)[:k] if len(rs) > k else rs
    return out


def worker(tool: str, task: str, gt_path: Path, dt_path: Path) -> dict:
    start = time.perf_counter()
    if tool == "tailseg":
        from tailseg.data import AnnotationFile
        from tailseg.evaluation import evaluate, load_results, make_protocol

        p = make_protocol("lvis", "segm") if task == "mask300" else make_protocol("challenge2021")
        gt = AnnotationFile.load(gt_path, keep_degenerate=True)
        ap = evaluate(gt, load_results(dt_path, gt, need_masks=True), p).stats["AP"]
    elif tool == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        results = json.loads(dt_path.read_text())
        if task == "mask300":
            results, cap, iou = _top_per(results, "image_id", 300), 300, "segm"
        else:
            results, iou = _top_per(results, "category_id", 10000), "boundary"
            per_group: dict[tuple, int] = defaultdict(int)
            for r in results:
                per_group[r["image_id"], r["category_id"]] += 1
            cap = max(per_group.values())
        gt = COCO(str(gt_path))
        ev = COCOeval_faster(
            gt,
            gt.loadRes(results),
            iou,
            lvis_style=True,
            boundary_dilation_ratio=0.02,
            print_function=lambda *a: None,
        )
        ev.params.maxDets = [cap]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        ap = float(ev.stats[0])
    elif tool == "vernier":
        # vernier's native Evaluator on an LVIS dataset reports the COCO 12-stat plan (maxDets
        # per image *and class*); its AP is printed with |ΔAP| so the difference is visible.
        from vernier.instance import Boundary, CocoDataset, Evaluator, Segm

        results = json.loads(dt_path.with_name("dt_bbox.json").read_text())
        if task == "mask300":
            results, iou = _top_per(results, "image_id", 300), Segm()
        else:
            results, iou = _top_per(results, "category_id", 10000), Boundary(0.02)
        gt = CocoDataset.from_lvis_json(gt_path.read_bytes())
        ev = Evaluator(iou=iou, parity_mode="strict", max_dets=(1, 10, 100))
        ap = float(ev.evaluate(gt, json.dumps(results).encode(), num_threads=2).stats[0])
    else:
        raise SystemExit(f"unknown tool {tool}")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB → GiB
    return {"tool": tool, "task": task, "seconds": seconds, "peak_rss_gb": peak, "AP": ap}


def trainer_worker(gt_path: Path, dt_path: Path, config: str) -> dict:
    """The trainer's per-epoch evaluation (`engine.evaluate.evaluate_predictions`, the eval
    section of `config`: LVIS mask and box AP at 300 per image, and AP‡) of predictions held
    as `predict_split` leaves them: one dict per image with tensors and RLEs (str counts).
    Peak RSS is counted from when the predictions and the ground truth are in memory (the
    kernel's peak is reset there), so it holds both, as the trainer does."""
    import gc

    import orjson
    import torch

    from tailseg.cli.common import resolve_config
    from tailseg.config import load_config
    from tailseg.data import AnnotationFile
    from tailseg.data.dataset import release_freed_memory
    from tailseg.engine.evaluate import evaluate_predictions

    cfg = load_config(str(resolve_config(config)))
    gt = AnnotationFile.load(gt_path, keep_degenerate=True)
    base = _status_gb("VmRSS")  # the interpreter, its imports and the ground truth
    # the results as columns first, so that the parsed json is freed whole before the
    # predictions are made: made one by one, as `predict_split` makes them
    results = orjson.loads(dt_path.with_name("dt_bbox.json").read_bytes())
    results.sort(key=lambda r: r["image_id"])
    iid = np.array([r["image_id"] for r in results], dtype=np.int64)
    labels = np.array([gt.label_of[r["category_id"]] for r in results], dtype=np.int64)
    scores = np.array([r["score"] for r in results], dtype=np.float32)
    xywh = np.array([r["bbox"] for r in results], dtype=np.float32).reshape(-1, 4)
    counts = [r["segmentation"]["counts"].encode() for r in results]
    cuts = np.cumsum([0] + [len(c) for c in counts])
    blob = b"".join(counts)
    del results, counts
    gc.collect()
    release_freed_memory()
    first = np.flatnonzero(np.r_[True, iid[1:] != iid[:-1], True])
    predictions = []
    for a, b in itertools.pairwise(first.tolist()):
        h, w = gt.image_by_id[int(iid[a])].height, gt.image_by_id[int(iid[a])].width
        box = torch.from_numpy(xywh[a:b])
        predictions.append(
            {
                "image_id": int(iid[a]),
                "labels": torch.from_numpy(labels[a:b].copy()),
                "scores": torch.from_numpy(scores[a:b].copy()),
                "mask_scores": torch.from_numpy(scores[a:b].copy()),
                "boxes": torch.cat([box[:, :2], box[:, :2] + box[:, 2:]], 1),
                "rles": [
                    {"size": [h, w], "counts": blob[cuts[k] : cuts[k + 1]].decode()}
                    for k in range(a, b)
                ],
            }
        )
    del iid, labels, scores, xywh, blob, cuts
    gc.collect()
    held = _status_gb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    start = time.perf_counter()
    stats = evaluate_predictions(gt, predictions, cfg, {im.id for im in gt.images})
    seconds = time.perf_counter() - start
    return {
        "tool": f"trainer ({config})",
        "seconds": seconds,
        "held_gb": held,
        "base_gb": base,
        "peak_rss_gb": _status_gb("VmHWM"),
        "AP": stats["segm"]["AP"],
        "APbox": stats["bbox"]["AP"] if "bbox" in stats else float("nan"),
        "APdd": stats["challenge2021"]["AP"] if "challenge2021" in stats else float("nan"),
    }


def _status_gb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e9
    raise KeyError(field)


def _wall(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, stdout) of a child process, measured from outside."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError((err.read().strip().splitlines() or ["?"])[-1])
        return seconds, usage.ru_maxrss / 1024**2, out.read()


def cli_command(task: str, gt_path: Path, dt_path: Path, out: Path) -> list[str]:
    protocol = ["--protocol", "lvis"] if task == "mask300" else ["--protocol", "challenge2021"]
    return [
        sys.executable, "-m", "tailseg.cli.main", "eval", "--gt", str(gt_path),
        "--results", str(dt_path), *protocol, "--out", str(out),
    ]  # fmt: skip


def run_cli(tasks: list[str], tools: list[str], gt_path: Path, dt_path: Path) -> dict:
    best = min(_wall([sys.executable, "-c", "pass"])[0] for _ in range(5))
    helped = min(_wall([sys.executable, "-m", "tailseg.cli.main", "--help"])[0] for _ in range(5))
    print(f"start-up: python -c pass {best:.3f} s, tailseg --help {helped:.3f} s (fastest of 5)")
    rows: dict[tuple[str, str], dict] = {}
    for task in tasks:
        for tool in tools:
            if tool == "tailseg":
                out = dt_path.with_name(f"cli_{task}.json")
                cmd = cli_command(task, gt_path, dt_path, out)
            else:
                cmd = [sys.executable, __file__, "--worker", tool, task, str(gt_path), str(dt_path)]
            try:
                seconds, peak, stdout = _wall(cmd)
            except RuntimeError as e:
                print(f"{task:8s} {tool:8s} not run: {e}")
                continue
            if tool == "tailseg":
                ap = json.loads(out.read_text())["AP"]
            else:
                ap = json.loads(stdout.strip().splitlines()[-1])["AP"]
            rows[task, tool] = {"seconds": seconds, "peak_rss_gb": peak, "AP": ap}
            print(f"{task:8s} {tool:8s} {seconds:7.2f} s  {peak:5.2f} GB  AP {ap:.6f}  (process)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--dets", type=int, default=1000)
    ap.add_argument("--tools", default="tailseg,faster,vernier")
    ap.add_argument("--tasks", default="mask300,apdd")
    ap.add_argument("--cli", action="store_true", help="whole processes, start-up included")
    ap.add_argument(
        "--max-gb", type=float, help="address-space limit per tool process (GB): over it, not run"
    )
    ap.add_argument(
        "--trainer", metavar="CONFIG", help="the trainer's in-process evaluation with CONFIG"
    )
    ap.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "TASK", "GT", "DT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.worker:
        tool, task, gt, dt = args.worker
        if tool == "trainer":
            print(json.dumps(trainer_worker(Path(gt), Path(dt), task)))
        else:
            print(json.dumps(worker(tool, task, Path(gt), Path(dt))))
        return
    t = time.perf_counter()
    gt_path, dt_path = generate(args.images, args.dets)
    print(
        f"data: {args.images} images × {args.dets} detections, 1,203 classes "
        f"({time.perf_counter() - t:.0f} s to make or load) — {dt_path}"
    )
    rows: dict[tuple[str, str], dict] = {}

    def limit() -> None:  # in each tool's process: fail (MemoryError) rather than swap or OOM
        if args.max_gb:
            cap = int(args.max_gb * 1e9)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    if args.trainer:
        cmd = [sys.executable, __file__, "--worker", "trainer", args.trainer, str(gt_path)]
        proc = subprocess.run([*cmd, str(dt_path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"trainer evaluation failed: {proc.stderr.strip()[-2000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{row['tool']}: evaluation {row['seconds']:.1f} s, peak RSS {row['peak_rss_gb']:.2f}"
            f" GB (held before: {row['held_gb']:.2f} GB, of which the predictions "
            f"{row['held_gb'] - row['base_gb']:.2f} GB); mask AP "
            f"{row['AP']:.6f}, box AP {row['APbox']:.6f}, AP‡ {row['APdd']:.6f}"
        )
        return
    if args.cli:
        rows = run_cli(args.tasks.split(","), args.tools.split(","), gt_path, dt_path)
    for task in args.tasks.split(",") if not args.cli else []:
        for tool in args.tools.split(","):
            cmd = [sys.executable, __file__, "--worker", tool, task, str(gt_path), str(dt_path)]
            proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit)
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{task:8s} {tool:8s} not run: {reason}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[task, tool] = row
            print(
                f"{task:8s} {tool:8s} {row['seconds']:7.1f} s  {row['peak_rss_gb']:5.2f} GB  "
                f"AP {row['AP']:.6f}"
            )
    for (task, tool), row in rows.items():
        if tool == "tailseg":
            continue
        ours = rows.get((task, "tailseg"))
        if ours:
            print(
                f"ratio {task} tailseg/{tool}: time {ours['seconds'] / row['seconds']:.2f}  "
                f"peak RSS {ours['peak_rss_gb'] / row['peak_rss_gb']:.2f}  "
                f"|ΔAP| {abs(ours['AP'] - row['AP']):.1e}"
            )


if __name__ == "__main__":
    main()
