"""HTC vs + RefineMask vs + RefineMask + Mask Scoring on the synthetic benchmark, over seeds.

    python benchmarks/refinemask_bench.py --out runs/rm_bench [--seeds 0,1,2]
        [--variants htc,rm,rm+ms] [--extra key=value ...]

Each (variant, seed) is `tailseg demo tiny <variant's overrides> train.seed=K` — the demo's
data, recipe and epochs, about 10–14 minutes each on 2 cores, run one at a time (never beside
other torch jobs) — skipped when its folder already holds that variant's finished run.
Every `best.pt` is then evaluated on the 120 val images: mask AP, boundary AP and AP‡ (each
with APs/APm/APl and APr), and for the RefineMask variants with both ways of forming the final
mask (`model.roi.mask_merge=mean|last`). Prints one row per run and mean ± sd per variant, and
writes OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this tree's tailseg, as the training subprocesses use
VARIANTS = {  # explicit, whatever tiny's defaults are
    "htc": ["model.roi.mask_heads=[htc,htc,htc]", "model.roi.mask_scoring=false"],
    "rm": ["model.roi.mask_heads=[htc,htc,refinemask]", "model.roi.mask_scoring=false"],
    "rm+ms": ["model.roi.mask_heads=[htc,htc,refinemask]", "model.roi.mask_scoring=true"],
}


def trained_as(run: Path, overrides: list[str]) -> bool:
    """Whether `run` holds a finished run of the variant (its saved config has its heads)."""
    from tailseg.cli.common import load_run_config

    if not (run / "metrics.json").is_file():
        return False
    roi = load_run_config(str(run / "config.yaml"), []).model.roi
    wanted = load_run_config("tiny", overrides).model.roi
    return (roi.mask_heads, roi.mask_scoring) == (wanted.mask_heads, wanted.mask_scoring)


COLUMNS = [  # (section, stat) shown, in percent
    ("segm", "AP"),
    ("segm", "APs"),
    ("segm", "APm"),
    ("segm", "APl"),
    ("segm", "APr"),
    ("boundary", "AP"),
    ("boundary", "APl"),
    ("challenge2021", "AP"),
    ("challenge2021", "APs"),
    ("challenge2021", "APm"),
    ("challenge2021", "APl"),
    ("challenge2021", "APr"),
]


def train(run: Path, overrides: list[str]) -> None:
    cmd = [sys.executable, "-m", "tailseg.cli.main", "demo", "tiny", *overrides]
    cmd += ["--out", str(run), "--overwrite", "--no-progress", "--images", "2"]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - start) / 60
    (run / "bench_time.txt").write_text(f"{minutes:.2f} min\n")
    print(f"  {minutes:.1f} min", flush=True)


def evaluate_run(run: Path, merge: str | None) -> dict[str, dict[str, float]]:
    from tailseg.cli.common import load_run_config
    from tailseg.data import InstanceDataset
    from tailseg.engine.distributed import Dist
    from tailseg.engine.evaluate import evaluate_predictions, predict_split
    from tailseg.inference.predict import load_model

    overrides = ["eval.iou_types=[segm,boundary]", "eval.challenge=true"]
    if merge is not None:
        overrides.append(f"model.roi.mask_merge={merge}")
    cfg = load_run_config(str(run / "config.yaml"), overrides)
    model, _ = load_model(cfg, run / "best.pt", torch.device("cpu"))
    data = InstanceDataset(run / "data" / "val.json", run / "data" / "images")
    preds = predict_split(model, data, cfg.infer, Dist(), progress=False)
    return evaluate_predictions(data.ann, preds, cfg, {im.id for im in data.images})


def row(stats: dict[str, dict[str, float]]) -> list[float]:
    return [100 * stats[sec][key] for sec, key in COLUMNS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "rm_bench")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="htc,rm,rm+ms")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every run")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[list[float]]] = {}
    head = " ".join(f"{sec[:5]}.{key:>4}" for sec, key in COLUMNS)
    print(f"{'run':<22}{head}")
    for variant in args.variants.split(","):
        for seed in seeds:
            run = args.out / f"{variant}-s{seed}"
            overrides = [*VARIANTS[variant], *args.extra, f"train.seed={seed}"]
            if not trained_as(run, overrides):
                train(run, overrides)
            merges = ["mean", "last"] if variant != "htc" else [None]
            for merge in merges:
                name = variant if merge is None else f"{variant}/{merge}"
                values = row(evaluate_run(run, merge))
                results.setdefault(name, []).append(values)
                print(f"{name + f' s{seed}':<22}" + " ".join(f"{v:10.1f}" for v in values))
    print("\nmean ± sd over seeds", seeds)
    summary = {}
    for name, rows in results.items():
        cols = list(zip(*rows, strict=True))
        mean = [statistics.fmean(c) for c in cols]
        sd = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cols]
        print(f"{name:<22}" + " ".join(f"{m:5.1f}±{s:4.1f}" for m, s in zip(mean, sd, strict=True)))
        summary[name] = {
            f"{sec}.{key}": {"mean": m, "sd": s, "runs": list(c)}
            for (sec, key), m, s, c in zip(COLUMNS, mean, sd, cols, strict=True)
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
