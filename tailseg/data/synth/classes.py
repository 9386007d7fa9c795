"""Which classes the synthetic benchmark has, how often each occurs, and how each looks.

Categories are sampled from the real LVIS v1 list (bundled `lvis_v1_category_stats.json`):
the r/c/f group sizes keep LVIS's 337/461/405 proportions, and within a group categories are
drawn at stratified quantiles of the real train image counts, so the sample keeps the shape of
the tail. Real counts are then compressed into the synthetic train set with a monotone map that
is the identity up to 10 images (rare classes keep their real 1–10 training images) and a power
law above it, so the largest class fits in half of the training images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

GROUPS = ("r", "c", "f")
SHAPES = (
    "ellipse",
    "rectangle",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "crescent",
    "blob",
    "lshape",
    "diamond",
    "arrow",
    "arc",
)
TEXTURES = ("solid", "stripes", "checker", "dots", "gradient", "rings")
RARE_MAX_IMAGES = 10  # LVIS: rare = at most 10 training images


@cache
def lvis_v1_categories() -> tuple[dict, ...]:
    """The 1,203 LVIS v1 categories with train image/instance counts (bundled data)."""
    text = resources.files("tailseg.data").joinpath("resources/lvis_v1_category_stats.json")
    return tuple(json.loads(text.read_text()))


def group_sizes(k: int, cats: tuple[dict, ...]) -> dict[str, int]:
    """Split k classes over r/c/f in LVIS proportions (largest remainder, each group >= 1)."""
    totals = {g: sum(c["frequency"] == g for c in cats) for g in GROUPS}
    n = sum(totals.values())
    exact = {g: k * totals[g] / n for g in GROUPS}
    sizes = {g: max(1, math.floor(exact[g])) for g in GROUPS}
    order = sorted(GROUPS, key=lambda g: exact[g] - math.floor(exact[g]), reverse=True)
    i = 0
    while sum(sizes.values()) < k:
        sizes[order[i % 3]] += 1
        i += 1
    while sum(sizes.values()) > k:  # only when k is tiny and the max(1, .) floors overshoot
        g = max(GROUPS, key=lambda g: sizes[g])
        sizes[g] -= 1
    return sizes


def sample_categories(k: int, rng: np.random.Generator) -> list[dict]:
    """k LVIS v1 categories, r/c/f proportions kept, stratified over each group's image counts."""
    cats = lvis_v1_categories()
    chosen: list[dict] = []
    for g, size in group_sizes(k, cats).items():
        pool = sorted((c for c in cats if c["frequency"] == g), key=lambda c: c["image_count"])
        pos = ((np.arange(size) + rng.uniform(size=size)) / size * len(pool)).astype(int)
        chosen += [pool[min(p, len(pool) - 1)] for p in pos]
    return sorted(chosen, key=lambda c: c["id"])


def compress_counts(real: np.ndarray, num_images: int, head_fraction: float = 0.5) -> np.ndarray:
    """Map real train image counts to synthetic ones.

    g(x) = x for x <= 10; above, g(x) = 10 (x / 10)^γ with γ <= 1 chosen so that the largest
    count maps to `head_fraction * num_images`. Monotone, log-log linear above 10, never more
    than `num_images`.
    """
    real = np.asarray(real, dtype=np.float64)
    cap = max(RARE_MAX_IMAGES + 1, head_fraction * num_images)
    top = real.max(initial=1.0)
    gamma = 1.0
    if top > RARE_MAX_IMAGES:
        gamma = min(1.0, math.log(cap / RARE_MAX_IMAGES) / math.log(top / RARE_MAX_IMAGES))
    above = np.maximum(
        RARE_MAX_IMAGES + 1,
        np.round(RARE_MAX_IMAGES * (np.maximum(real, 1) / RARE_MAX_IMAGES) ** gamma),
    )
    counts = np.where(real <= RARE_MAX_IMAGES, np.maximum(real, 1), above)
    return np.minimum(counts, num_images).astype(np.int64)


@dataclass(frozen=True)
class Appearance:
    """How every instance of one class is drawn: shape, colours, texture, size and pose priors."""

    shape: str
    texture: str
    color: tuple[float, float, float]  # RGB 0..255
    color2: tuple[float, float, float]
    aspect: float  # width / height of the unit shape
    texture_angle: float  # radians
    texture_period: float  # px at unit scale
    rotation_range: float  # radians, per-instance rotation in ±range
    size_mean: float  # log of the typical radius as a fraction of the image short side
    blob_coeffs: tuple[float, ...]  # radial harmonics of the "blob" shape


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (255 * r, 255 * g, 255 * b)


def make_appearances(k: int, rng: np.random.Generator) -> list[Appearance]:
    """k distinct appearances: (shape, texture, hue) combinations spread out, then shuffled."""
    shapes = [SHAPES[i % len(SHAPES)] for i in range(k)]
    textures = [TEXTURES[(i // len(SHAPES) + i) % len(TEXTURES)] for i in range(k)]
    hues = [(0.13 + i * 0.6180339887) % 1.0 for i in range(k)]
    order = rng.permutation(k)
    out = []
    for j in range(k):
        i = int(order[j])
        sat, val = rng.uniform(0.55, 0.95), rng.uniform(0.6, 0.95)
        color = _hsv_to_rgb(hues[i], sat, val)
        color2 = _hsv_to_rgb((hues[i] + rng.uniform(0.25, 0.5)) % 1.0, sat, val * 0.55)
        out.append(
            Appearance(
                shape=shapes[i],
                texture=textures[i],
                color=color,
                color2=color2,
                aspect=float(rng.uniform(0.6, 1.6)),
                texture_angle=float(rng.uniform(0, math.pi)),
                texture_period=float(rng.uniform(0.25, 0.6)),
                rotation_range=float(rng.choice([0.0, 0.3, math.pi])),
                size_mean=float(rng.uniform(math.log(0.06), math.log(0.3))),
                blob_coeffs=tuple(float(v) for v in rng.uniform(-0.25, 0.25, size=6)),
            )
        )
    return out
