"""`tailseg data synth`: write a synthetic long-tailed LVIS-format benchmark (train + val).

Layout of OUT::

    train.json  val.json            LVIS v1 format, federated fields on every image
    images/train/000000000001.jpg   `file_name`s are relative to OUT/images
    images/val/...

Every image gets a class set drawn so that each class appears in its target number of images
(see `classes.compress_counts`); objects are drawn back to front, an occluded object is
annotated by its visible pixels (compressed RLE), an unoccluded one by its polygon. LVIS's
federated labels are simulated: `neg_category_ids` lists classes verified absent; a class in
`not_exhaustive_category_ids` has one drawn instance left unannotated; and some images hold an
object of a class that is neither annotated nor listed (unverified, as in LVIS).
Same seed → byte-identical output.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tailseg.config import SynthConfig, to_dict
from tailseg.data.synth import render
from tailseg.data.synth.classes import Appearance, compress_counts, make_appearances
from tailseg.data.synth.classes import sample_categories as sample_lvis_categories
from tailseg.structures import masks as mask_ops
from tailseg.utils.files import atomic_write_bytes, atomic_write_json

MIN_VISIBLE_FRACTION = 0.4  # an object keeps at least this share of its pixels when others land
NOT_EXHAUSTIVE_PROB = 0.15  # per (image, class with >= 2 instances)
UNVERIFIED_PROB = 0.1  # per image: one drawn object of an unlisted class
MAX_NEGATIVES = 5
STAMP = "synth.json"  # the parameters of a complete benchmark, written last


@dataclass(frozen=True)
class SynthOutput:
    train_json: Path
    val_json: Path
    image_root: Path


def assign_classes(
    counts: np.ndarray, num_images: int, rng: np.random.Generator
) -> list[list[int]]:
    """Per image, the class indices it shows; class c lands on exactly min(counts[c], N) images.

    Images are drawn without replacement with weight 1 / (1 + load)², so objects spread evenly.
    """
    load = np.zeros(num_images)
    per_image: list[list[int]] = [[] for _ in range(num_images)]
    for c in np.argsort(-counts, kind="stable"):
        w = 1.0 / (1.0 + load) ** 2
        chosen = rng.choice(num_images, size=int(counts[c]), replace=False, p=w / w.sum())
        for i in chosen:
            per_image[int(i)].append(int(c))
            load[i] += 1
    return per_image


def instance_counts(
    classes: list[int], per_image_mean: np.ndarray, max_objects: int, rng: np.random.Generator
) -> list[int]:
    """Instances per present class (>= 1 each); extra instances trimmed to `max_objects`."""
    n = [1 + min(3, int(rng.poisson(per_image_mean[c] - 1))) for c in classes]
    while sum(n) > max_objects and max(n, default=1) > 1:
        n[int(np.argmax(n))] -= 1
    return n


def _place(
    app: Appearance, h: int, w: int, placed: list[dict], rng: np.random.Generator
) -> tuple[list[float], np.ndarray, tuple[float, float], float, float] | None:
    short = min(h, w)
    for attempt in range(16):
        radius = math.exp(rng.normal(app.size_mean, 0.4)) * short * 0.8 ** (attempt // 4)
        radius = float(np.clip(radius, 5.0, 0.45 * short))
        center = (float(rng.uniform(0.05, 0.95) * w), float(rng.uniform(0.05, 0.95) * h))
        angle = float(rng.uniform(-app.rotation_range, app.rotation_range))
        poly = render.place_polygon(app, center, radius, angle, h, w, rng)
        m = render.rasterize(poly, h, w)
        if m.sum() < 16:
            continue
        if all((p["visible"] & ~m).sum() >= MIN_VISIBLE_FRACTION * p["full_area"] for p in placed):
            return poly, m, center, radius, angle
    return None


def render_image(
    h: int, w: int, objects: list[int], apps: list[Appearance], rng: np.random.Generator
) -> tuple[np.ndarray, list[dict]]:
    """Draw `objects` (class indices, back to front) on a cluttered background.

    Returns the image uint8 (h, w, 3) and per drawn object {cls, polygon, full_area, visible}.
    """
    img = render.background(h, w, rng)
    placed: list[dict] = []
    for c in objects:
        spot = _place(apps[c], h, w, placed, rng)
        if spot is None:
            continue
        poly, m, center, radius, angle = spot
        for p in placed:
            p["visible"] &= ~m
        ys, xs = np.nonzero(m)
        img[ys, xs] = render.texture(apps[c], xs, ys, center, radius, angle, rng)
        placed.append({"cls": c, "polygon": poly, "full_area": int(m.sum()), "visible": m})
    return render.finish(img, rng), placed


def _segmentation(p: dict) -> tuple[object, mask_ops.RLE]:
    rle = mask_ops.encode(p["visible"])
    if p["visible"].sum() == p["full_area"]:
        return [p["polygon"]], rle  # unoccluded: the polygon rasterises to exactly these pixels
    return rle, rle


def _image_size(cfg: SynthConfig, rng: np.random.Generator) -> tuple[int, int]:
    short = int(rng.integers(cfg.min_side, cfg.max_side + 1))
    long = round(short * rng.uniform(1.0, 1.5))
    return (short, long) if rng.uniform() < 0.6 else (long, short)  # (h, w)


def _write_split(
    name: str,
    split_id: int,
    layout: list[list[int]],
    cfg: SynthConfig,
    apps: list[Appearance],
    per_image_mean: np.ndarray,
    first_image_id: int,
    first_ann_id: int,
    out: Path,
    progress: bool,
) -> tuple[list[dict], list[dict]]:
    k = len(apps)
    images, annotations = [], []
    ann_id = first_ann_id
    for i, classes in enumerate(tqdm(layout, desc=f"synth {name}", disable=not progress)):
        rng = np.random.default_rng([cfg.seed, split_id, i])
        h, w = _image_size(cfg, rng)
        objects = [
            c
            for c, n in zip(
                classes, instance_counts(classes, per_image_mean, cfg.max_objects, rng), strict=True
            )
            for _ in range(n)
        ]
        absent = [c for c in range(k) if c not in classes]
        unverified = []
        if absent and rng.uniform() < UNVERIFIED_PROB:
            unverified = [int(rng.choice(absent))]
        objects = [objects[j] for j in rng.permutation(len(objects))] + unverified
        img, placed = render_image(h, w, objects, apps, rng)
        drawn = {p["cls"] for p in placed}
        negatives = [c for c in absent if c not in drawn]
        neg = sorted(rng.choice(negatives, size=min(len(negatives), MAX_NEGATIVES), replace=False))
        annotated = [p for p in placed if p["cls"] not in unverified]
        not_exhaustive = []
        for c in sorted({p["cls"] for p in annotated}):
            mine = [j for j, p in enumerate(annotated) if p["cls"] == c]
            if len(mine) >= 2 and rng.uniform() < NOT_EXHAUSTIVE_PROB:
                not_exhaustive.append(c)
                annotated.pop(mine[int(rng.integers(len(mine)))])
        image_id = first_image_id + i
        file_name = f"{name}/{image_id:012d}.jpg"
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=92)
        atomic_write_bytes(out / "images" / file_name, buf.getvalue())
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": h,
                "width": w,
                "neg_category_ids": [int(c) for c in neg],
                "not_exhaustive_category_ids": not_exhaustive,
            }
        )
        for p in annotated:
            segm, rle = _segmentation(p)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": p["cls"],
                    "segmentation": segm,
                    "area": mask_ops.area(rle),
                    "bbox": mask_ops.bbox_xywh(rle),
                }
            )
            ann_id += 1
    return images, annotations


def synth_categories(cfg: SynthConfig) -> list[tuple[int, str]]:
    """(LVIS id, name) of the benchmark's categories in label (ascending id) order, without
    generating it: they are the first draw of `generate`'s random stream."""
    cats = sample_lvis_categories(cfg.num_classes, np.random.default_rng(cfg.seed))
    return sorted((int(c["id"]), str(c["name"])) for c in cats)


def generate(out: str | Path, cfg: SynthConfig, *, progress: bool = True) -> SynthOutput:
    """Write the benchmark to `out` and return the paths of its two json files and image root."""
    out = Path(out)
    rng = np.random.default_rng(cfg.seed)
    cats = sample_lvis_categories(cfg.num_classes, rng)  # the first draw (see synth_categories)
    apps = make_appearances(cfg.num_classes, rng)
    real_images = np.array([c["image_count"] for c in cats])
    per_image_mean = np.clip(np.array([c["instance_count"] for c in cats]) / real_images, 1, 3)
    n_train = compress_counts(real_images, cfg.train_images)
    scale = cfg.val_images / cfg.train_images
    n_val = np.minimum(np.maximum(1, np.ceil(n_train * scale)), cfg.val_images).astype(np.int64)

    splits = {}
    next_image, next_ann = 1, 1
    for split_id, (name, counts, n) in enumerate(
        [("train", n_train, cfg.train_images), ("val", n_val, cfg.val_images)]
    ):
        layout = assign_classes(counts, n, rng)
        images, anns = _write_split(
            name, split_id, layout, cfg, apps, per_image_mean, next_image, next_ann, out, progress
        )
        next_image += n
        next_ann += len(anns)
        splits[name] = (images, anns)

    # Categories: real LVIS ids, names and r/c/f; counts over *this* train split (as LVIS does).
    train_anns = splits["train"][1]
    img_sets: list[set[int]] = [set() for _ in cats]
    inst = np.zeros(len(cats), dtype=np.int64)
    for a in train_anns:
        img_sets[a["category_id"]].add(a["image_id"])
        inst[a["category_id"]] += 1
    categories = [
        {
            "id": c["id"],
            "name": c["name"],
            "synonyms": [c["name"]],
            "synset": c["synset"],
            "def": f"synthetic {apps[j].texture} {apps[j].shape}",
            "frequency": c["frequency"],
            "image_count": len(img_sets[j]),
            "instance_count": int(inst[j]),
        }
        for j, c in enumerate(cats)
    ]
    to_id = [c["id"] for c in cats]
    paths = {}
    for name, (images, anns) in splits.items():
        for im in images:
            im["neg_category_ids"] = sorted(to_id[c] for c in im["neg_category_ids"])
            im["not_exhaustive_category_ids"] = sorted(
                to_id[c] for c in im["not_exhaustive_category_ids"]
            )
        for a in anns:
            a["category_id"] = to_id[a["category_id"]]
        info = {
            "description": f"tailseg synthetic long-tailed benchmark ({name})",
            "num_classes": cfg.num_classes,
            "seed": cfg.seed,
        }
        paths[name] = out / f"{name}.json"
        atomic_write_json(
            paths[name],
            {
                "info": info,
                "licenses": [],
                "images": images,
                "annotations": anns,
                "categories": categories,
            },
        )
    atomic_write_json(out / STAMP, to_dict(cfg), indent=1)
    return SynthOutput(paths["train"], paths["val"], out / "images")
