"""Data pipeline throughput against the model's training step, in the same run; or what
balanced mosaic and balanced copy-paste do to the instances (--measure).

    python benchmarks/data_bench.py [--images 40 --samples 40]
    python benchmarks/data_bench.py --measure [--config tiny] [--samples 200 --pastes 2000]

Throughput: generates (cached under benchmarks/.cache) a synthetic LVIS-format set at LVIS-like
sizes (short side 480–640, up to 15 objects), then times the full training pipeline of the
report — repeat-factor sampling, mosaic (p 0.5), copy-paste (p 0.5), multi-scale resize
(640–1400, long side ≤ 1600), flip, crop, colour jitter — in one process (one loader worker),
and one training step of HTC-R50 (1,203 classes) on two of those samples. The loader is not the
bottleneck when one worker's images/s exceeds the model's.

--measure: on a config's training set (the tiny config: the synthetic benchmark, generated under
benchmarks/.cache) and its `data.augment`, (1) instances per output image, output size and
object areas of plain images against mosaics (only the resize or the mosaic applied), over the
same repeat-factor order; (2) the r/c/f shares of pasted instances, class-blind against
class-balanced selection, beside those of all training instances and the shares expected
(an instance of class c in image I pasted at a rate ∝ r(I) class-blind, ∝ r(c) balanced).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tailseg.config import AugmentConfig, InferConfig, ModelConfig, SynthConfig
from tailseg.data import InstanceDataset
from tailseg.data.sampling import RepeatFactorSampler, category_repeat_factors, repeat_factors
from tailseg.data.stats import GROUPS
from tailseg.data.synth import generate
from tailseg.data.transforms.geometry import random_resize
from tailseg.data.transforms.pipeline import AugmentedDataset
from tailseg.models.build import build_model

CACHE = Path(__file__).resolve().parent / ".cache"


def shares(counts: dict[str, float]) -> str:
    total = sum(counts.values()) or 1.0
    return " ".join(f"{g} {100 * counts[g] / total:5.1f}%" for g in GROUPS)


def measure_mosaic(base: InstanceDataset, factors: np.ndarray, aug: AugmentConfig, n: int) -> None:
    order = list(RepeatFactorSampler(factors, seed=0, mode=aug.rfs_mode))[:n]
    only = {"copy_paste_prob": 0.0, "flip_prob": 0.0, "crop_prob": 0.0, "jitter_prob": 0.0}
    rows = {}
    for name, p in (("plain", 0.0), ("mosaic", 1.0)):
        data = AugmentedDataset(base, factors, replace(aug, mosaic_prob=p, **only), seed=0)
        per_image, area, rel, pixels = [], [], [], []
        start = time.perf_counter()
        for i in order:
            image, t = data[i]
            hw = image.shape[-1] * image.shape[-2]
            a = t.masks.flatten(1).sum(1).double()  # (M,) object areas in px
            per_image.append(len(t))
            area += a.tolist()
            rel += (a / hw).tolist()
            pixels.append(hw)
        ms = 1000 * (time.perf_counter() - start) / len(order)
        rows[name] = (np.mean(per_image), np.median(area), np.median(rel), np.mean(pixels))
        print(
            f"{name:6s}: {rows[name][0]:5.2f} instances/image, median object {rows[name][1]:7.0f}"
            f" px = {100 * rows[name][2]:.3f}% of its image, mean image {rows[name][3] / 1e3:.0f}"
            f" kpx ({len(order)} samples, {ms:.0f} ms each)"
        )
    (n0, a0, r0, p0), (n1, a1, r1, p1) = rows["plain"], rows["mosaic"]
    print(
        f"mosaic/plain: {n1 / n0:.2f}× instances per image, median object area {a1 / a0:.2f}×"
        f" in px and {r1 / r0:.2f}× as a fraction of the image, images {p1 / p0:.2f}× the pixels"
    )


def measure_copy_paste(
    base: InstanceDataset, factors: np.ndarray, aug: AugmentConfig, pastes: int
) -> None:
    freq = {c.id: c.frequency for c in base.ann.categories}
    if any(f is None for f in freq.values()):
        raise SystemExit("--measure needs r/c/f frequencies in the categories (LVIS, synthetic)")
    group_of = {base.ann.label_of[cid]: f for cid, f in freq.items()}
    r_cat = category_repeat_factors(base.ann, aug.rfs_threshold)
    # expected counts (all sources / sources with r(I) > 1): class-blind ∝ r(I), balanced ∝ r(c)
    expect = {k: dict.fromkeys(GROUPS, 0.0) for k in ("all", "blind", "bal", "blind>1", "bal>1")}
    for row, r_image in enumerate(factors):
        inst = base.ann.instances(row)
        for cid in inst.category_ids[~inst.iscrowd].tolist():
            group = freq[cid]
            expect["all"][group] += 1
            for key, rate in (("blind", r_image), ("bal", r_cat[cid])):
                expect[key][group] += rate
                expect[key + ">1"][group] += rate if r_image > 1 else 0.0
    print(f"all training instances:       {shares(expect['all'])}")
    for key, name in (("blind", "class-blind"), ("bal", "balanced")):
        print(
            f"expected pasted, {name + ':':12s} {shares(expect[key])}; from sources with "
            f"r(I) > 1: {shares(expect[key + '>1'])}"
        )
    only = {"mosaic_prob": 0.0, "flip_prob": 0.0, "crop_prob": 0.0, "jitter_prob": 0.0}
    for name, on in (("class-blind", False), ("balanced", True)):
        data = AugmentedDataset(base, factors, replace(aug, copy_paste_balanced=on, **only))
        drawn: list[int] = []
        load = data._load

        def spy(j: int, load=load, drawn=drawn) -> tuple[torch.Tensor, object]:
            drawn.append(j)  # the source each paste draws
            return load(j)

        data._load = spy
        counts, repeated = dict.fromkeys(GROUPS, 0.0), dict.fromkeys(GROUPS, 0.0)
        empty = 0
        for k in range(pastes):
            g = torch.Generator().manual_seed(k)
            image, t = random_resize(*load(k % len(base)), g, aug.scale_range, aug.max_size)
            _, out = data.paste(image, t.select(torch.zeros(len(t), dtype=torch.bool)), g)
            for label in out.labels.tolist():  # the destination has none: all were pasted
                counts[group_of[label]] += 1
                repeated[group_of[label]] += float(factors[drawn[-1]] > 1)
            empty += len(out) == 0
        per = sum(counts.values()) / pastes
        print(
            f"measured pasted, {name + ':':12s} {shares(counts)}; from sources with r(I) > 1: "
            f"{shares(repeated)} ({per:.2f} per paste, {100 * empty / pastes:.0f}% of pastes "
            f"empty; {pastes} pastes)"
        )


def measure(args: argparse.Namespace) -> None:
    from tailseg.cli.common import load_run_config
    from tailseg.data.splits import split_files

    torch.set_num_threads(1)  # as in a loader worker (and immune to busy cores)
    cfg = load_run_config(args.config, args.overrides)
    folder = CACHE / f"measure_{Path(args.config).stem}"
    base = InstanceDataset(*split_files(cfg, "train", folder), only_annotated=True)
    aug = cfg.data.augment
    factors = repeat_factors(base.ann, aug.rfs_threshold)
    print(
        f"{args.config}: {len(base)} training images; scale_range {aug.scale_range}, mosaic "
        f"{aug.mosaic_scale_range or 'the same'}, max_size {aug.max_size}, RFS t "
        f"{aug.rfs_threshold:g}"
    )
    measure_mosaic(base, factors, aug, args.samples)
    measure_copy_paste(base, factors, aug, args.pastes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--measure", action="store_true", help="instance statistics, not speed")
    ap.add_argument("--config", default="tiny", help="--measure: config name or path")
    ap.add_argument("--pastes", type=int, default=2000, help="--measure: copy-pastes to count")
    ap.add_argument("overrides", nargs="*", help="--measure: dotted config overrides")
    args = ap.parse_args()
    if args.measure:
        measure(args)
        return
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
    factors = repeat_factors(base.ann, aug.rfs_threshold)
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
