"""Model speed and memory: tailseg HTC-R50 against torchvision's Mask R-CNN R50-FPN.

    python benchmarks/model_bench.py [--tasks infer,train,backbone] [--repeat 3]
        [--tools tailseg,tailseg+rm+ms,torchvision,swin-t,cbswin-t,cbswin-t+cp,swin-t+cp]

`tailseg+rm+ms` is the report's model: HTC-R50 with RefineMask as the last stage's mask head
and Mask Scoring, measured beside plain HTC (`tailseg`) in the same run. `swin-t` is HTC (the
same heads as `tailseg`) on a Swin-T, `cbswin-t` on CBNetV2's composite of two Swin-T, `+cp`
with activation checkpointing in the Swin blocks.

Both models have random weights, 1,203 classes (+ background) and the same input. Each run is
a fresh process, so peak RSS is its own.

- `infer`: one 800×1333 image, up to 1,000 detections (score threshold 1e-4), masks at image
  resolution (torchvision pastes float masks (N, 1, H, W); tailseg pastes and RLE-encodes them
  in chunks, which is what an evaluator consumes). The fastest of `--repeat` runs, and the
  forward pass's FLOPs (torch's FlopCounterMode: convolutions, matmuls; one more run after the
  timed ones), whose ratio is the floor of the time ratio for equally efficient kernels.
- `train`: one training step (forward + backward) on 2 images of 512×512 with 8 objects each,
  the fastest of `--repeat`; also the step's own memory (peak RSS minus RSS before it).
- `backbone`: forward + backward of the backbone alone on 2 × 512² (the sum of squares of every
  level it returns, both networks' for a composite): time and the step's own memory — the
  backbone's share of training memory, which activation checkpointing should at least halve.
  Its worker runs with MALLOC_MMAP_THRESHOLD_=65536 so that freed activations leave the RSS
  (glibc's heap otherwise keeps them: CB-Swin-T's step then reads 3.16 → 1.90 GB with
  checkpointing instead of 2.38 → 0.64 GB); its times are then not comparable with `train`.

Ratios are tailseg / torchvision (HTC has three cascade stages; the targets are ≤ 2× the
latency and ≤ 1.5× the memory) and tailseg+rm+ms / tailseg (targets: ≤ 1.5× the time of
inference and of a training step, ≤ 3 GB peak RSS at inference), cbswin-t / swin-t (≤ 2.3×
a training step, ≤ 2.1× inference). mmdetection's HTC is not
run: mmcv's compiled operators have no build for torch 2.14.1 (`pip install mmcv` would compile
them from source).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

CLASSES = 1203
SWIN_TOOLS = {  # tool → (CBNetV2 composite, activation checkpointing), HTC heads as `tailseg`
    "swin-t": (False, False),
    "swin-t+cp": (False, True),
    "cbswin-t": (True, False),
    "cbswin-t+cp": (True, True),
}


def _targets_tv(h: int, w: int, n: int, g: torch.Generator) -> dict:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = torch.rand(n, 2, generator=g) * 100 + 20
    boxes = torch.cat([xy, xy + wh], 1).round()
    masks = torch.zeros(n, h, w, dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        masks[i, y0:y1, x0:x1] = 1
    labels = torch.randint(1, CLASSES + 1, (n,), generator=g)
    return {"boxes": boxes, "labels": labels, "masks": masks}


RATIOS = (
    ("tailseg", "torchvision"),
    ("tailseg+rm+ms", "tailseg"),
    ("cbswin-t", "swin-t"),
    ("cbswin-t+cp", "cbswin-t"),
    ("swin-t+cp", "swin-t"),
)


def worker(tool: str, task: str, repeat: int) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ours = tool.startswith("tailseg") or tool in SWIN_TOOLS
    if ours:
        from tailseg.config import BackboneConfig, InferConfig, ModelConfig, RoIConfig
        from tailseg.models.build import build_model
        from tailseg.structures.targets import Targets

        roi, backbone = RoIConfig(), BackboneConfig()
        if tool == "tailseg+rm+ms":
            roi = RoIConfig(mask_heads=("htc", "htc", "refinemask"), mask_scoring=True)
        elif tool in SWIN_TOOLS:
            composite, checkpoint = SWIN_TOOLS[tool]
            backbone = BackboneConfig(
                kind="swin", frozen_stages=0, composite=composite, checkpoint=checkpoint
            )  # Swin-T: embed 96, depths (2, 2, 6, 2), window 7, drop path 0.2
        cfg = ModelConfig(num_classes=CLASSES, roi=roi, backbone=backbone)
        model = build_model(cfg, InferConfig(max_per_img=1000))
    else:
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        model = maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=CLASSES + 1,
            box_detections_per_img=1000,
            box_score_thresh=1e-4,
            min_size=800,
            max_size=1333,
        )
    if task == "infer":
        model.eval()
        image = torch.randint(0, 256, (3, 800, 1333), generator=g, dtype=torch.uint8)
        if not ours:
            image = image.float() / 255
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            with torch.no_grad():
                if ours:
                    (det,) = model([image])
                    n = len(det.to_rles())  # full-image masks, RLE-encoded
                else:
                    (out,) = model([image])
                    n = len(out["scores"])  # masks are pasted in postprocess
            times.append(time.perf_counter() - start)
        seconds = min(times)
        with torch.no_grad(), FlopCounterMode(display=False) as flops:
            model([image])  # after the timed runs: counting slows the operators down
        extra = {"detections": n, "tflop": flops.get_total_flops() / 1e12}
    elif task == "backbone":  # forward + backward of the backbone alone (every level it returns)
        if not ours:
            raise SystemExit("the backbone task measures tailseg's backbones only")
        model.train()
        x = torch.rand(2, 3, 512, 512, generator=g)
        pair = getattr(model.backbone, "forward_pair", None)
        times, before = [], _rss_gb()
        for _ in range(repeat):
            model.zero_grad()
            start = time.perf_counter()
            levels = [y for out in pair(x) for y in out] if pair else model.backbone(x)
            sum(y.square().mean() for y in levels).backward()
            times.append(time.perf_counter() - start)
        seconds = min(times)
        extra = {"step_gb": _peak_gb() - before}
    else:
        model.train()
        tv = [_targets_tv(512, 512, 8, g) for _ in range(2)]
        images = [torch.randint(0, 256, (3, 512, 512), generator=g, dtype=torch.uint8) for _ in tv]
        times, before = [], _rss_gb()
        for _ in range(repeat):
            model.zero_grad()
            start = time.perf_counter()
            if ours:
                none = torch.zeros(0, dtype=torch.long)
                targets = [
                    Targets(
                        t["boxes"],
                        t["labels"] - 1,
                        t["masks"].bool(),
                        torch.zeros(8, dtype=torch.bool),
                        i,
                        (512, 512),
                        none,
                        none,
                    )
                    for i, t in enumerate(tv)
                ]
                losses = model(images, targets)
            else:
                losses = model([im.float() / 255 for im in images], tv)
            sum(losses.values()).backward()
            times.append(time.perf_counter() - start)
        seconds = min(times)
        extra = {"losses": len(losses), "step_gb": _peak_gb() - before}
    return {"tool": tool, "task": task, "seconds": seconds, "peak_rss_gb": _peak_gb(), **extra}


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1024**3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="infer,train")
    ap.add_argument("--tools", default="tailseg,tailseg+rm+ms,torchvision")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "TASK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeat)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = {}
    for task in args.tasks.split(","):
        for tool in args.tools.split(","):
            cmd = [sys.executable, __file__, "--worker", tool, task, "--repeat", str(args.repeat)]
            env = dict(os.environ)
            if task == "backbone":  # glibc's heap would keep freed activations in the RSS
                env["MALLOC_MMAP_THRESHOLD_"] = "65536"
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{task:6s} {tool:12s} failed: {reason}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[task, tool] = row
            what = ""
            if task == "infer":
                what = f"{row['detections']} detections, {row['tflop']:.2f} TFLOP"
            elif "step_gb" in row:
                what = f"the step itself {row['step_gb']:.2f} GB above the model"
            secs, gb = row["seconds"], row["peak_rss_gb"]
            print(f"{task:6s} {tool:14s} {secs:7.2f} s  {gb:6.2f} GB  {what}")
    for task in args.tasks.split(","):
        for num, den in RATIOS:
            a, b = rows.get((task, num)), rows.get((task, den))
            if a and b:
                flops = f"  FLOP {a['tflop'] / b['tflop']:.2f}" if "tflop" in a else ""
                if "step_gb" in a and b["step_gb"] > 0:
                    flops = f"  step memory {a['step_gb'] / b['step_gb']:.2f}"
                print(
                    f"ratio {task} {num}/{den}: time {a['seconds'] / b['seconds']:.2f}  "
                    f"peak RSS {a['peak_rss_gb'] / b['peak_rss_gb']:.2f}{flops}"
                )


if __name__ == "__main__":
    main()
