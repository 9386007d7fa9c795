"""Balanced copy-paste (Ghiasi et al., 2021), the source drawn from the repeat-factor stream.

Which source instances are pasted: instance j is kept with probability `keep_prob[j]`, drawn
independently; a draw that keeps none leaves the destination unchanged. The pipeline makes that
probability class-balanced with `balanced_keep_prob`: p_j = p0 · r(c_j) / r(I), r(c) the class's
repeat factor and r(I) = max over the source's classes (the factor the source was drawn with).

Why this rule: the source is drawn with probability ∝ r(I), so an instance of class c is pasted
at a rate ∝ r(I) · p0 · r(c) / r(I) = p0 · r(c) — repeat factor sampling at the level of
instances, whatever image it rides in. A head instance in a tail image is pasted as often as a
head instance anywhere (not at its image's tail rate, the mixing the report blames on RFS), and
the source's rarest class always has probability p0. With the image-level draw alone (the same
probability for every instance) the rate would be ∝ r(I), the image-level mixing itself.

Where (Simple Copy-Paste jitters both images' scales independently): the chosen instances'
image is flipped with probability `flip_prob`, resized so that its short side is s times the
destination's, s log-uniform in `scale_range`, and placed at a random offset — anywhere inside
the destination when smaller, a random window of it when larger. Their union P is blended in
with an alpha matte softened by a Gaussian of `blend_sigma` px. Destination masks lose P; a
destination instance keeping less than `min_visible` (30%) of its pixels is dropped as too
occluded. Pasted classes are removed from the destination's `neg_labels`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from tailseg.data.transforms.common import randint, resize_sample, tighten, uniform
from tailseg.data.transforms.geometry import crop, hflip
from tailseg.structures.targets import Targets

MIN_VISIBLE = 0.3


def balanced_keep_prob(labels: Tensor, iscrowd: Tensor, class_factors: Tensor, p0: float) -> Tensor:
    """p_j = min(1, p0 · r(c_j) / r(I)) (M,) for a source's labels (M,), `class_factors` (C,)
    holding r(c) by label; r(I) = max of r(c) over the non-crowd instances (1 if none), as in
    `repeat_factors`. See the module docstring for why."""
    r = class_factors[labels].float()  # (M,)
    solid = r[~iscrowd]
    r_image = solid.max() if len(solid) else r.new_tensor(1.0)
    return (p0 * r / r_image).clamp(max=1.0)


def _place(x: Tensor, oy: int, ox: int, h: int, w: int, base: Tensor | None = None) -> Tensor:
    """(..., a, b) put at offset (oy, ox) (may be negative) into (..., h, w): `base` (a copy)
    or zeros elsewhere, cut at the edges."""
    out = x.new_zeros((*x.shape[:-2], h, w)) if base is None else base.clone()
    a, b = x.shape[-2:]
    y0, y1, x0, x1 = max(oy, 0), min(oy + a, h), max(ox, 0), min(ox + b, w)
    if y1 > y0 and x1 > x0:
        out[..., y0:y1, x0:x1] = x[..., y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def _soft(mask: Tensor, sigma: float) -> Tensor:
    """A float alpha matte (H, W): the mask blurred by a Gaussian of `sigma` px."""
    alpha = mask.float()
    if sigma <= 0:
        return alpha
    r = max(1, round(2 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    a = F.conv2d(alpha[None, None], k.view(1, 1, 1, -1), padding=(0, r))
    a = F.conv2d(a, k.view(1, 1, -1, 1), padding=(r, 0))
    return torch.maximum(a[0, 0], alpha)  # never less opaque than the mask itself


def _jittered(
    image: Tensor,
    src_img: Tensor,
    src: Targets,
    g: torch.Generator,
    scale_range: tuple[float, float],
    flip_prob: float,
) -> tuple[Tensor, Targets]:
    """The source flipped, rescaled and offset onto the destination's (H, W): image (3, H, W)
    (the destination's pixels where the source does not reach) and targets at (H, W)."""
    h, w = image.shape[-2:]
    lo, hi = scale_range
    s = lo * (hi / lo) ** uniform(g)  # log-uniform: as likely halved as doubled
    if uniform(g) < flip_prob:
        src_img, src = hflip(src_img, src)
    sh, sw = src_img.shape[-2:]
    scale = s * min(h, w) / min(sh, sw)
    big_h, big_w = max(1, round(sh * scale)), max(1, round(sw * scale))  # the rescaled source
    oy, ox = (
        randint(g, min(0, h - big_h), max(0, h - big_h)),
        randint(g, min(0, w - big_w), max(0, w - big_w)),
    )
    # resize only the source window that lands on the destination (+1 px for interpolation)
    y0 = max(0, math.floor(max(0, -oy) / scale) - 1)
    y1 = min(sh, math.ceil(min(big_h, h - oy) / scale) + 1)
    x0 = max(0, math.floor(max(0, -ox) / scale) - 1)
    x1 = min(sw, math.ceil(min(big_w, w - ox) / scale) + 1)
    src_img, src = crop(src_img, src, y0, x0, y1 - y0, x1 - x0)
    size = (max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))
    src_img, src = resize_sample(src_img, src, size)
    oy, ox = oy + round(y0 * scale), ox + round(x0 * scale)
    masks = _place(src.masks, oy, ox, h, w)  # (M, H, W)
    return _place(src_img, oy, ox, h, w, base=image), tighten(
        replace(src, masks=masks, image_size=(h, w))
    )


def copy_paste(
    image: Tensor,
    t: Targets,
    source: tuple[Tensor, Targets],
    g: torch.Generator,
    keep_prob: float | Tensor = 0.5,
    blend_sigma: float = 1.0,
    min_visible: float = MIN_VISIBLE,
    *,
    scale_range: tuple[float, float] = (1.0, 1.0),
    flip_prob: float = 0.0,
) -> tuple[Tensor, Targets]:
    """Instances of `source` pasted onto (image (3, H, W), t); `keep_prob` a float or (M,)
    per source instance. Defaults: no flip, the source's short side made the destination's,
    top-left aligned."""
    src_img, src = source
    if len(src) == 0:
        return image, t
    chosen = torch.rand(len(src), generator=g) < keep_prob  # (M,)
    if not chosen.any():
        return image, t
    src_img, src = _jittered(image, src_img, src.select(chosen), g, scale_range, flip_prob)
    if len(src) == 0:
        return image, t
    pasted = src.masks.any(dim=0)  # (H, W)
    alpha = _soft(pasted, blend_sigma)
    out = (image.float() * (1 - alpha) + src_img.float() * alpha).round().to(torch.uint8)
    before = t.masks.flatten(1).sum(1)
    masks = t.masks & ~pasted
    visible = masks.flatten(1).sum(1)
    keep = (visible > 0) & (visible >= min_visible * before)
    kept = tighten(replace(t, masks=masks).select(keep))
    neg = t.neg_labels[~torch.isin(t.neg_labels, src.labels)]
    merged = replace(
        kept,
        boxes=torch.cat([kept.boxes, src.boxes]),
        labels=torch.cat([kept.labels, src.labels]),
        masks=torch.cat([kept.masks, src.masks]),
        iscrowd=torch.cat([kept.iscrowd, src.iscrowd]),
        neg_labels=neg,
    )
    return out, merged
