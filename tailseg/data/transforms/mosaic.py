"""Balanced mosaic: four images (drawn from the repeat-factor stream) on one canvas.

Composed as mmdetection's `Mosaic`: a canvas of 2h × 2w, each image resized keeping its ratio
to fit h × w (so it keeps about a quarter of the canvas, and its objects about a quarter of the
area they would have if that image alone filled an output of the canvas's size), a centre
(cx, cy) drawn in the middle half of the canvas, and image k placed in its quadrant with its
inner corner at the centre (top-left image: bottom-right corner at (cx, cy), and so on), cut at
the canvas's edges. The pipeline then sizes the mosaic like any image: it composes directly at
the output size (H, W) = (2h, 2w), which is the 2h × 2w composition resized with one resampling
instead of two.

Masks follow the pixels; instances cut down to nothing are dropped; boxes are the tight boxes of
what is left. The canvas is grey (114) where no image reaches. Image-level federated fields:
`not_exhaustive_labels` is the union, `neg_labels` the classes negative in some image that no
instance of the mosaic has.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from tailseg.data.transforms.common import resize_sample, tighten, uniform
from tailseg.structures.targets import Targets

FILL = 114
ASPECT = (3, 4)  # (h, w) of the canvas: LVIS/COCO's most common image shape


def mosaic(
    samples: list[tuple[Tensor, Targets]],
    g: torch.Generator,
    size: tuple[int, int],
    centre: tuple[int, int] | None = None,
) -> tuple[Tensor, Targets]:
    """Four (image, targets) on a canvas of `size` (H, W); each image fitted to (H/2, W/2).

    `centre` (cy, cx) fixes the meeting point of the four images (default: drawn from `g` in
    [H/4, 3H/4] × [W/4, 3W/4], mmdetection's centre ratio range 0.5–1.5 of a tile).
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic takes 4 samples, got {len(samples)}")
    h, w = size
    if centre is None:
        cx, cy = round(uniform(g, 0.25, 0.75) * w), round(uniform(g, 0.25, 0.75) * h)
    else:
        cy, cx = centre
    canvas = torch.full((3, h, w), FILL, dtype=torch.uint8)  # (3, H, W)
    parts: list[Targets] = []
    for k, (image, t) in enumerate(samples):
        ih, iw = image.shape[-2:]
        s = min(h / 2 / ih, w / 2 / iw)  # fit the tile (H/2, W/2)
        image, t = resize_sample(image, t, (max(1, round(ih * s)), max(1, round(iw * s))))
        ih, iw = image.shape[-2:]
        # quadrant on the canvas and the matching window of the image (inner corner at centre)
        y0, y1 = (max(cy - ih, 0), cy) if k < 2 else (cy, min(cy + ih, h))
        x0, x1 = (max(cx - iw, 0), cx) if k % 2 == 0 else (cx, min(cx + iw, w))
        sy = ih - (y1 - y0) if k < 2 else 0
        sx = iw - (x1 - x0) if k % 2 == 0 else 0
        canvas[:, y0:y1, x0:x1] = image[:, sy : sy + y1 - y0, sx : sx + x1 - x0]
        masks = torch.zeros((len(t), h, w), dtype=torch.bool)  # (M_k, H, W)
        masks[:, y0:y1, x0:x1] = t.masks[:, sy : sy + y1 - y0, sx : sx + x1 - x0]
        parts.append(tighten(replace(t, masks=masks, image_size=(h, w))))
    labels = torch.cat([p.labels for p in parts])
    neg = torch.unique(torch.cat([p.neg_labels for p in parts]))
    merged = Targets(
        boxes=torch.cat([p.boxes for p in parts]),
        labels=labels,
        masks=torch.cat([p.masks for p in parts]),
        iscrowd=torch.cat([p.iscrowd for p in parts]),
        image_id=samples[0][1].image_id,
        image_size=(h, w),
        neg_labels=neg[~torch.isin(neg, labels)],
        not_exhaustive_labels=torch.unique(torch.cat([p.not_exhaustive_labels for p in parts])),
    )
    return canvas, merged
