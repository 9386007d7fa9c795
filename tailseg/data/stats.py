"""Per-frequency statistics of an annotation file (`tailseg data stats`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from tailseg.data.annotations import AnnotationFile

GROUPS = ("r", "c", "f")
AREA_RANGES = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, float("inf"))}


def lvis_frequency(image_count: int) -> str:
    """LVIS's definition: rare <= 10 training images, common 11–100, frequent > 100."""
    return "r" if image_count <= 10 else "c" if image_count <= 100 else "f"


def dataset_stats(ann: AnnotationFile) -> dict[str, Any]:
    """Counts of images, instances and categories, per r/c/f group and per category.

    `categories` counts categories with at least one instance (`categories_defined` all of them).
    When a file has no `frequency` field (COCO), groups are derived from its own image counts with
    LVIS's thresholds and `frequency_source` says so.
    """
    images_of: dict[int, set[int]] = defaultdict(set)
    instances_of: dict[int, int] = defaultdict(int)
    for a in ann.annotations:
        images_of[a.category_id].add(a.image_id)
        instances_of[a.category_id] += 1
    from_field = all(c.frequency is not None for c in ann.categories)
    freq = {
        c.id: c.frequency if from_field else lvis_frequency(len(images_of[c.id]))
        for c in ann.categories
    }
    groups: dict[str, Any] = {}
    for g in GROUPS:
        ids = [cid for cid, f in freq.items() if f == g]
        imgs: set[int] = set().union(*(images_of[c] for c in ids)) if ids else set()
        groups[g] = {
            "classes": len(ids),
            "classes_present": sum(instances_of[c] > 0 for c in ids),
            "images": len(imgs),
            "instances": sum(instances_of[c] for c in ids),
        }
    areas = np.array([a.area for a in ann.annotations], dtype=np.float64)
    per_image = np.array([len(ann.anns_by_image[im.id]) for im in ann.images])
    return {
        "file": str(ann.path),
        "images": len(ann.images),
        "instances": len(ann.annotations),
        "crowd_instances": sum(a.iscrowd for a in ann.annotations),
        "categories": sum(n > 0 for n in instances_of.values()),
        "categories_defined": len(ann.categories),
        "frequency_source": "field" if from_field else "derived from image counts (LVIS rule)",
        "frequency": groups,
        "area": {
            k: int(((areas >= lo) & (areas < hi)).sum()) for k, (lo, hi) in AREA_RANGES.items()
        },
        "instances_per_image": {
            "mean": float(per_image.mean()) if len(per_image) else 0.0,
            "max": int(per_image.max(initial=0)),
            "without_annotations": int((per_image == 0).sum()),
        },
        "federated": {
            "neg_labels": sum(len(im.neg_category_ids) for im in ann.images),
            "not_exhaustive_labels": sum(len(im.not_exhaustive_category_ids) for im in ann.images),
        },
        "skipped_annotations": len(ann.skipped),
        "per_category": [
            {
                "id": c.id,
                "name": c.name,
                "frequency": freq[c.id],
                "images": len(images_of[c.id]),
                "instances": instances_of[c.id],
            }
            for c in ann.categories
        ],
    }


def format_stats(s: dict[str, Any]) -> str:
    """Human-readable summary table of `dataset_stats`."""
    lines = [
        f"{s['file']}",
        f"  images {s['images']}   instances {s['instances']}"
        f" (crowd {s['crowd_instances']})   categories {s['categories']}"
        f" present of {s['categories_defined']}",
        f"  frequency groups ({s['frequency_source']}):",
        f"    {'group':<6}{'classes':>9}{'present':>9}{'images':>9}{'instances':>11}",
    ]
    for g in GROUPS:
        v = s["frequency"][g]
        lines.append(
            f"    {g:<6}{v['classes']:>9}{v['classes_present']:>9}{v['images']:>9}"
            f"{v['instances']:>11}"
        )
    a, ipi, fed = s["area"], s["instances_per_image"], s["federated"]
    lines += [
        f"  areas: small {a['small']}  medium {a['medium']}  large {a['large']}",
        f"  instances per image: mean {ipi['mean']:.2f}  max {ipi['max']}"
        f"  images without annotations {ipi['without_annotations']}",
        f"  federated labels: negative {fed['neg_labels']}"
        f"  not exhaustive {fed['not_exhaustive_labels']}",
    ]
    if s["skipped_annotations"]:
        lines.append(f"  skipped annotations: {s['skipped_annotations']} (see the warning above)")
    return "\n".join(lines)
