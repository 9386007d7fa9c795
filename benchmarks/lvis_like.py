"""Annotation files of LVIS v1 train's shape, at any fraction of its size (no image files).

    python benchmarks/lvis_like.py --fraction 0.1 --out benchmarks/.cache/lvis_like_10.json

LVIS v1 train holds 100,170 images and 1,270,141 instances over 1,203 categories in a 1.1 GB
json. At `--fraction f` this writes round(f · 100,170) images and about f · 1,270,141 instances:

- categories: the real 1,203 LVIS v1 categories with their frequency, image and instance counts
  (`tailseg.data.synth.classes`, from ../shared/data); instances draw their class by the real
  instance counts, so the long tail is LVIS's;
- images: COCO's sizes (640 × 480 and the like) and fields, instances per image from a
  log-normal with LVIS's mean of 12.7 and a long tail (capped at 294, train's maximum), about
  9.4 negative categories and 0.16 not-exhaustive ones per image (measured on the LVIS v0.5 val
  sample in tests/data);
- polygons: 1 part for 86% of instances, else 2–5 (the same sample); vertices per part
  log-normal with the sample's spread and a median of 28, which makes the 100% file 1.1 GB
  like LVIS's (0.87 kB of json per instance; the v0.5 val sample's own median is 21, mean 29),
  coordinates with two decimals.

The file is streamed to disk in chunks (the generator never holds it whole) and is the same
for the same fraction and seed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LVIS_TRAIN_IMAGES, LVIS_TRAIN_INSTANCES = 100_170, 1_270_141
VERTICES_MEDIAN = 28  # the 100% file is then 1.1 GB, as LVIS v1 train's json
SIZES = [(480, 640), (640, 480), (427, 640), (640, 427), (426, 640), (500, 375), (612, 612)]


def _polygon(rng: np.random.Generator, h: int, w: int, cx: float, cy: float, r: float) -> list:
    n = max(3, round(rng.lognormal(math.log(VERTICES_MEDIAN), 0.75)))
    t = np.sort(rng.uniform(0, 2 * math.pi, n))
    rr = r * rng.uniform(0.45, 1.0, n)
    x = np.clip(cx + rr * np.cos(t), 0, w)
    y = np.clip(cy + rr * np.sin(t), 0, h)
    return np.round(np.stack([x, y], 1).reshape(-1), 2).tolist()


def _annotation(rng: np.random.Generator, aid: int, image_id: int, cat: int, h: int, w: int):
    r = float(np.clip(rng.lognormal(math.log(35), 0.9), 3, min(h, w) / 2))
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    parts = 1 if rng.random() < 0.86 else int(rng.integers(2, 6))
    segm = [
        _polygon(rng, h, w, cx + rng.normal(0, r / 3), cy + rng.normal(0, r / 3), r / parts)
        for _ in range(parts)
    ]
    xs = np.concatenate([np.asarray(p[0::2]) for p in segm])
    ys = np.concatenate([np.asarray(p[1::2]) for p in segm])
    x0, y0 = float(xs.min()), float(ys.min())
    bbox = [x0, y0, round(float(xs.max()) - x0, 2), round(float(ys.max()) - y0, 2)]
    area = round(0.6 * bbox[2] * bbox[3], 2)  # shoelace would be exact; only the shape matters
    return {
        "segmentation": segm,
        "area": area,
        "image_id": image_id,
        "bbox": bbox,
        "category_id": cat,
        "id": aid,
    }


def generate(fraction: float, out: Path, seed: int = 0, chunk: int = 20_000) -> Path:
    from tailseg.data.synth.classes import lvis_v1_categories

    rng = np.random.default_rng(seed)
    cats = lvis_v1_categories()
    cat_ids = np.array([c["id"] for c in cats])
    weight = np.array([c["instance_count"] for c in cats], dtype=np.float64)
    weight /= weight.sum()
    n_images = max(1, round(fraction * LVIS_TRAIN_IMAGES))
    mean = LVIS_TRAIN_INSTANCES / LVIS_TRAIN_IMAGES  # 12.68
    sigma = 0.9
    counts = np.clip(
        np.round(rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, n_images)), 1, 294
    ).astype(int)
    images, sizes = [], []
    for i in range(n_images):
        h, w = SIZES[int(rng.integers(len(SIZES)))]
        sizes.append((h, w))
        neg = rng.choice(cat_ids, size=int(rng.poisson(9.4)), replace=False)
        ne = rng.choice(cat_ids, size=int(rng.random() < 0.13), replace=False)
        images.append(
            {
                "date_captured": "2013-11-19 20:30:17",
                "neg_category_ids": sorted(int(c) for c in neg),
                "id": i + 1,
                "license": 3,
                "height": h,
                "width": w,
                "flickr_url": f"http://farm9.staticflickr.com/8081/{i + 1:010d}_z.jpg",
                "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.jpg",
                "not_exhaustive_category_ids": sorted(int(c) for c in ne),
            }
        )
    categories = [
        {
            "id": c["id"],
            "name": c["name"],
            "synset": c["synset"],
            "synonyms": [c["name"]],
            "def": f"a {c['name'].replace('_', ' ')}",
            "frequency": c["frequency"],
            "image_count": c["image_count"],
            "instance_count": c["instance_count"],
        }
        for c in cats
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    aid = 0
    with open(tmp, "wb") as f:
        f.write(b'{"info":{"description":"LVIS v1 train-shaped, generated"},"licenses":[],')
        f.write(b'"images":' + orjson.dumps(images) + b',"categories":')
        f.write(orjson.dumps(categories) + b',"annotations":[')
        batch: list[dict] = []
        first = True
        for i, ((h, w), n) in enumerate(zip(sizes, counts.tolist(), strict=True)):
            for cat in rng.choice(cat_ids, size=n, p=weight).tolist():
                aid += 1
                batch.append(_annotation(rng, aid, i + 1, cat, h, w))
            if len(batch) >= chunk or i == n_images - 1:
                if batch:
                    f.write((b"" if first else b",") + orjson.dumps(batch)[1:-1])
                    first = False
                batch = []
        f.write(b"]}")
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out or ROOT / "benchmarks" / ".cache" / f"lvis_like_{args.fraction:g}.json"
    t = time.perf_counter()
    generate(args.fraction, out, args.seed)
    size = out.stat().st_size
    print(f"{out}: {size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
