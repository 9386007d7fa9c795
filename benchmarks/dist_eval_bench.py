"""Per-epoch evaluation under DDP: 2 processes against 1, the trainer's own code path.

    python benchmarks/dist_eval_bench.py --out runs/dist_eval [--checkpoint runs/demo/best.pt]
        [CONFIG key=value ...]

Runs `tailseg.engine.trainer.run_evaluation` — each rank predicts its shard of the val split,
rank 0 gathers the predictions, evaluates them alone and sends the metrics to every rank — on
the val split of CONFIG (default `tiny`: its synthetic benchmark, 120 images), once in one
process with 2 threads and once under `torchrun --nproc_per_node 2` with 1 thread per process,
then prints both wall times (prediction + evaluation, after the model is built) and whether
every metric is the same. Without `--checkpoint` the model has random weights (seed
`train.seed`): detections are poor but plentiful, which is what the timing needs.

`--worker OUT` is the per-process part (also what tests/test_dist_eval.py runs); it writes
OUT/rank<k>.json with the metrics that rank received and, with `--digest`, what rank 0 gathered:
(image id, detections, sum of scores) per image.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this tree's tailseg


def worker(
    out: Path, config: str, overrides: list[str], checkpoint_path: str | None, digest: bool
) -> None:
    import torch

    from tailseg.cli.common import load_run_config
    from tailseg.data import AnnotationFile, InstanceDataset
    from tailseg.data.splits import split_files
    from tailseg.engine import checkpoint
    from tailseg.engine import distributed as dist
    from tailseg.engine.evaluate import predict_split
    from tailseg.engine.trainer import run_evaluation
    from tailseg.models.build import build_model

    d = dist.init("cpu")
    cfg = load_run_config(config, overrides)
    if d.is_main:  # one rank makes the synthetic benchmark, the others wait for it
        split_files(cfg, "val", out / "data", progress=False)
    dist.barrier(d)
    val_json, val_images = split_files(cfg, "val", out / "data")
    val = InstanceDataset(val_json, val_images)
    gt = AnnotationFile.load(val_json, keep_degenerate=True)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, cfg.infer)
    if checkpoint_path:
        checkpoint.load_weights(model, checkpoint.load(checkpoint_path)["model"], checkpoint_path)
    dist.barrier(d)
    start = time.perf_counter()
    metrics = run_evaluation(model, val, gt, cfg, d, progress=False)
    seconds = time.perf_counter() - start
    report = {"world": d.world_size, "seconds": seconds, "images": len(val), "metrics": metrics}
    if digest:  # what the main rank gathered, image by image
        preds = predict_split(model, val, cfg.infer, d, cfg.eval.max_images, progress=False)
        report["gathered"] = [
            [p["image_id"], len(p["scores"]), round(float(p["scores"].double().sum()), 9)]
            for p in preds
        ]
    (out / f"rank{d.rank}.json").write_text(json.dumps(report))
    dist.shutdown(d)


def launch(out: Path, processes: int, args: list[str], threads: int) -> list[dict]:
    """Run the worker in `processes` processes of `threads` threads; every rank's report."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rank*.json"):
        old.unlink()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    script = [__file__, "--worker", str(out), *args]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(processes), *script]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return [json.loads((out / f"rank{k}.json").read_text()) for k in range(processes)]


def _flat(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{sec}.{k}": v for sec, stats in metrics.items() for k, v in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default="tiny")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--out", default="runs/dist_eval")
    ap.add_argument("--checkpoint")
    ap.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
    ap.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker), args.config, args.overrides, args.checkpoint, args.digest)
        return
    passed = [args.config, *args.overrides]
    passed += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    out = Path(args.out)
    (one,) = launch(out / "one", 1, passed, threads=2)
    two = launch(out / "two", 2, passed, threads=1)
    a = _flat(one["metrics"])
    worst = max(abs(a[k] - _flat(r["metrics"])[k]) for r in two for k in a)
    print(f"{one['images']} val images, {len(a)} metrics (mask AP {a['segm.AP']:.4f})")
    print(f"1 process × 2 threads:  {one['seconds']:6.1f} s")
    t2 = max(r["seconds"] for r in two)
    print(f"2 processes × 1 thread: {t2:6.1f} s   ratio {t2 / one['seconds']:.2f}")
    print(f"largest metric difference, over both ranks: {worst:.1e}")


if __name__ == "__main__":
    main()
