"""Test-time augmentation memory and time: 8 augmentations, 1,000 detections, 1,203 classes.

    python benchmarks/tta_bench.py [--scales report|small] [--size 800x1333] [--refinemask]
        [--recompute]

HTC-R50 (random weights) on one image with the report's scales (1600,1000) (1600,1400)
(1800,1200) (1800,1600), each with and without flip. Masks are predicted only in each
detection's class channel and averaged as 28×28 box-relative maps, so memory holds 8 × 1,000 ×
28² floats rather than 8 × 1,000 × 1,203 × 28² (about 30 GB) for a naive merge. With
`--refinemask` the last stage's head is RefineMask (112×112 masks) with Mask Scoring; with
`--recompute` each augmentation's features are recomputed in each phase instead of held.
The last line is `peak_rss_gb=<float> seconds=<float>`.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from tailseg.config import InferConfig, ModelConfig, RoIConfig
from tailseg.inference.tta import tta_detect
from tailseg.models.build import build_model

SCALES = {
    "report": [(1600, 1000), (1600, 1400), (1800, 1200), (1800, 1600)],
    "small": [(667, 400), (800, 480), (933, 560), (1067, 640)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", choices=list(SCALES), default="report")
    ap.add_argument("--size", default="800x1333", help="input image HxW")
    ap.add_argument("--refinemask", action="store_true", help="RefineMask + Mask Scoring")
    ap.add_argument(
        "--recompute", action="store_true", help="recompute features per phase (bounded memory)"
    )
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    roi = RoIConfig()
    if args.refinemask:
        roi = RoIConfig(mask_heads=("htc", "htc", "refinemask"), mask_scoring=True)
    cfg = ModelConfig(num_classes=1203, roi=roi)
    model = build_model(cfg, InferConfig(max_per_img=1000)).eval()
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    start = time.perf_counter()
    det = tta_detect(model, image, SCALES[args.scales], True, hold_features=not args.recompute)
    rles = det.to_rles()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    naive = 8 * len(det) * 1203 * 28 * 28 * 4 / 1024**3
    print(
        f"{len(SCALES[args.scales]) * 2} augmentations, {len(det)} detections, {len(rles)} "
        f"RLE masks at {h}x{w}; a naive merge would hold {naive:.0f} GB of mask logits"
    )
    print(f"peak_rss_gb={peak:.2f} seconds={seconds:.1f}")


if __name__ == "__main__":
    main()
