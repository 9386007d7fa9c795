"""Balanced copy-paste (Ghiasi et al., 2021), the source drawn from the repeat-factor stream.

The source image is resized so that its short side equals the destination's and aligned at
the top-left corner (what falls outside is cut, what is missing stays empty); each source
instance is chosen with probability `select_prob` (at least one); their union P is blended in
with an alpha matte softened by a Gaussian of `blend_sigma` px. Destination masks lose P; a
destination instance keeping less than `min_visible` (30%) of its pixels is dropped as too
occluded. Pasted classes are removed from the destination's `neg_labels`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from tailseg.data.transforms.common import randint, resize_sample, tighten, uniform
from tailseg.structures.targets import Targets

MIN_VISIBLE = 0.3


def _place_top_left(x: Tensor, h: int, w: int) -> Tensor:
    """(..., H, W) → (..., h, w), top-left aligned: cut or zero-extended."""
    out = x.new_zeros((*x.shape[:-2], h, w))
    hh, ww = min(h, x.shape[-2]), min(w, x.shape[-1])
    out[..., :hh, :ww] = x[..., :hh, :ww]
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


def copy_paste(
    image: Tensor,
    t: Targets,
    source: tuple[Tensor, Targets],
    g: torch.Generator,
    select_prob: float = 0.5,
    blend_sigma: float = 1.0,
    min_visible: float = MIN_VISIBLE,
) -> tuple[Tensor, Targets]:
    src_img, src = source
    if len(src) == 0:
        return image, t
    h, w = image.shape[-2:]
    sh, sw = src_img.shape[-2:]
    scale = min(h, w) / min(sh, sw)
    src_img, src = resize_sample(
        src_img, src, (max(1, round(sh * scale)), max(1, round(sw * scale)))
    )
    src_img = _place_top_left(src_img, h, w)
    src = tighten(replace(src, masks=_place_top_left(src.masks, h, w), image_size=(h, w)))
    if len(src) == 0:
        return image, t
    chosen = torch.tensor([uniform(g) < select_prob for _ in range(len(src))], dtype=torch.bool)
    if not chosen.any():
        chosen[randint(g, 0, len(src) - 1)] = True
    src = src.select(chosen)
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
