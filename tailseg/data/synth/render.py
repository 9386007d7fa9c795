"""Drawing synthetic scenes: class shapes as polygons, textures, cluttered backgrounds.

An object is a polygon (rounded to 0.01 px, clipped to the image); its pixels are the polygon's
pycocotools rasterisation, so a polygon annotation and the drawn pixels agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils

from tailseg.data.synth.classes import Appearance


def _circle(n: int, r: float = 1.0, a0: float = 0.0, a1: float = 2 * math.pi) -> np.ndarray:
    t = np.linspace(a0, a1, n, endpoint=False)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)  # (n, 2)


def _arc(n: int, rx: float, ry: float, a0: float, a1: float) -> np.ndarray:
    """n points on an elliptic arc from angle a0 to a1, both ends included, (n, 2)."""
    t = np.linspace(a0, a1, n)
    return np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)


def unit_shape(app: Appearance) -> np.ndarray:
    """The class's outline in unit coordinates (radius about 1), (n, 2) points x, y."""
    s = app.shape
    if s == "ellipse":
        pts = _circle(28)
    elif s == "rectangle":
        pts = np.array([[-1, -0.8], [1, -0.8], [1, 0.8], [-1, 0.8]], dtype=float)
    elif s == "triangle":
        pts = _circle(3, a0=-math.pi / 2)
    elif s == "star":
        outer, inner = _circle(5, 1.0, -math.pi / 2), _circle(5, 0.45, -math.pi / 2 + math.pi / 5)
        pts = np.stack([outer, inner], axis=1).reshape(-1, 2)  # alternate tips and notches
    elif s == "hexagon":
        pts = _circle(6)
    elif s == "cross":
        a, b = 0.33, 1.0
        pts = np.array(
            [
                [-a, -b],
                [a, -b],
                [a, -a],
                [b, -a],
                [b, a],
                [a, a],
                [a, b],
                [-a, b],
                [-a, a],
                [-b, a],
                [-b, -a],
                [-a, -a],
            ],
            dtype=float,
        )
    elif s == "crescent":
        outer = _arc(20, 1.0, 1.0, 0.5 * math.pi, 1.5 * math.pi)
        inner = _arc(16, 0.4, 1.0, 1.5 * math.pi, 0.5 * math.pi)[1:-1]
        pts = np.concatenate([outer, inner])
    elif s == "blob":
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        r = 1 + sum(c * np.cos((k + 2) * t + k) for k, c in enumerate(app.blob_coeffs))
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    elif s == "lshape":
        pts = np.array([[-1, -1], [-0.2, -1], [-0.2, 0.3], [1, 0.3], [1, 1], [-1, 1]], float)
    elif s == "diamond":
        pts = np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], dtype=float)
    elif s == "arrow":
        pts = np.array(
            [[-1, -0.3], [0.2, -0.3], [0.2, -0.75], [1, 0], [0.2, 0.75], [0.2, 0.3], [-1, 0.3]],
            dtype=float,
        )
    elif s == "arc":
        pts = np.concatenate(
            [_arc(18, 1.0, 1.0, 0, 1.4 * math.pi), _arc(14, 0.55, 0.55, 1.4 * math.pi, 0)]
        )
    else:
        raise ValueError(f"unknown shape {s!r}")
    return pts * np.array([app.aspect**0.5, app.aspect**-0.5])


def place_polygon(
    app: Appearance,
    center: tuple[float, float],
    radius: float,
    angle: float,
    h: int,
    w: int,
    rng: np.random.Generator,
) -> list[float]:
    """The class outline scaled, rotated, jittered and moved to `center`, as a flat COCO part."""
    pts = unit_shape(app)
    pts = pts * (1 + rng.normal(0, 0.03, size=pts.shape))  # small per-instance deformation
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]]) * radius + np.asarray(center)
    pts[:, 0] = np.clip(pts[:, 0], 0, w)
    pts[:, 1] = np.clip(pts[:, 1], 0, h)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def rasterize(polygon: list[float], h: int, w: int) -> np.ndarray:
    """Pixels of one polygon part as pycocotools rasterises it, bool (h, w)."""
    return mask_utils.decode(mask_utils.frPyObjects([polygon], h, w)[0]).astype(bool)


def texture(
    app: Appearance,
    xs: np.ndarray,
    ys: np.ndarray,
    center: tuple[float, float],
    radius: float,
    angle: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Colours (n, 3) float of the class texture at pixels (xs, ys), in object coordinates."""
    u = (xs.astype(np.float32) + 0.5 - center[0]) / max(radius, 1.0)
    v = (ys.astype(np.float32) + 0.5 - center[1]) / max(radius, 1.0)
    ca, sa = math.cos(app.texture_angle + angle), math.sin(app.texture_angle + angle)
    along, across = u * ca + v * sa, -u * sa + v * ca
    period = app.texture_period
    t = app.texture
    if t == "solid":
        weight = np.zeros_like(u)
    elif t == "stripes":
        weight = (np.sin(2 * math.pi * along / period) > 0).astype(np.float32)
    elif t == "checker":
        weight = ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
    elif t == "dots":
        fx = along / period - np.round(along / period)
        fy = across / period - np.round(across / period)
        weight = (fx**2 + fy**2 < 0.09).astype(np.float32)
    elif t == "gradient":
        weight = np.clip((along + 1) / 2, 0, 1)
    elif t == "rings":
        weight = (np.sin(2 * math.pi * np.sqrt(u**2 + v**2) / period) > 0).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {t!r}")
    c1 = np.asarray(app.color, dtype=np.float32) * rng.uniform(0.85, 1.1)
    c2 = np.asarray(app.color2, dtype=np.float32)
    shade = 1.0 - 0.2 * np.clip(u * 0.5 + v * 0.5, -1, 1)  # light from the top left
    return (c1 * (1 - weight[:, None]) + c2 * weight[:, None]) * shade[:, None]


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered, desaturated background (h, w, 3) float: gradient, blobs, lines."""
    base = rng.uniform(60, 190, size=3)
    tint = rng.uniform(-50, 50, size=3)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(a) + ys * math.sin(a)) / max(h, w)
    img = base + ramp[..., None] * tint
    grey = lambda: np.full(3, rng.uniform(40, 210)) + rng.normal(0, 12, size=3)  # noqa: E731
    for _ in range(int(rng.integers(4, 12))):  # soft irregular blobs
        n = int(rng.integers(4, 8))
        r = rng.uniform(0.05, 0.3) * min(h, w)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sort(rng.uniform(0, 2 * math.pi, n))
        rr = r * rng.uniform(0.5, 1.2, n)
        poly = np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], 1)
        poly = np.clip(poly, 0, [w, h]).reshape(-1).tolist()
        m = rasterize(poly, h, w)
        img[m] = 0.5 * img[m] + 0.5 * grey()
    for _ in range(int(rng.integers(3, 10))):  # thin lines
        x0, y0, x1, y1 = rng.uniform(0, 1, 4) * [w, h, w, h]
        dist = np.abs((y1 - y0) * xs - (x1 - x0) * ys + x1 * y0 - y1 * x0) / (
            math.hypot(x1 - x0, y1 - y0) + 1e-6
        )
        m = dist < rng.uniform(0.5, 2.0)
        img[m] = grey()
    return img


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise and quantisation to uint8 (h, w, 3)."""
    img = img + rng.normal(0, rng.uniform(2, 8), size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
