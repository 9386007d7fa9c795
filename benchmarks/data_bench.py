"""Data pipeline throughput against the model's training step, in the same run.

    python benchmarks/data_bench.py [--images 40 --samples 40]

Generates (cached under benchmarks/.cache) a synthetic LVIS-format set at LVIS-like sizes
(short side 480–640, up to 15 objects), then times the full training pipeline of the report —
repeat-factor sampling, mosaic (p 0.5, 640–1400), copy-paste (p 0.5), multi-scale resize
(400–1400, long side ≤ 1600), flip, crop, colour jitter — in one process (one loader worker),
and one training step of HTC-R50 (1,203 classes) on two of those samples. The loader is not the
bottleneck when one worker's images/s exceeds the model's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tailseg.config import AugmentConfig, InferConfig, ModelConfig, SynthConfig
from tailseg.data import InstanceDataset
from tailseg.data.sampling import RepeatFactorSampler, repeat_factors
from tailseg.data.synth import generate
from tailseg.data.transforms.pipeline import AugmentedDataset
from tailseg.models.build import build_model

CACHE = Path(__file__).resolve().parent / ".cache"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    folder = CACHE / f"synth_lvis_sized_{args.images}"
    cfg = SynthConfig(
        num_classes=40,
        train_images=args.images,
        val_images=4,
        seed=0,
        min_side=480,
        max_side=640,
        max_objects=15,
    )
    if not (folder / "train.json").exists():
        generate(folder, cfg, progress=False)
    base = InstanceDataset(folder / "train.json", folder / "images", only_annotated=True)
    aug = AugmentConfig()  # the report's recipe
    factors = repeat_factors(base.ann, aug.rfs_threshold, base.images)
    data = AugmentedDataset(base, factors, aug, seed=0)
    order = list(RepeatFactorSampler(factors, seed=0))
    n = min(args.samples, len(order))
    start = time.perf_counter()
    pixels, instances, samples = 0, 0, []
    for i in order[:n]:
        image, t = data[i]
        pixels += image.shape[-1] * image.shape[-2]
        instances += len(t)
        if len(samples) < 2:
            samples.append((image, t))
    loader = n / (time.perf_counter() - start)
    print(
        f"pipeline: {loader:.2f} images/s per worker ({n} samples, mean "
        f"{pixels / n / 1e6:.2f} Mpx, {instances / n:.1f} instances)"
    )

    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=1203), InferConfig()).train()
    images, targets = [s[0] for s in samples], [s[1] for s in samples]
    for _ in range(2):  # the second step is timed
        model.zero_grad()
        start = time.perf_counter()
        sum(model(images, targets).values()).backward()
        step = time.perf_counter() - start
    model_rate = len(images) / step
    print(f"HTC-R50 training step on 2 pipeline samples: {step:.1f} s ({model_rate:.2f} images/s)")
    print(f"ratio loader/model images per second: {loader / model_rate:.1f} (one worker)")


if __name__ == "__main__":
    main()
