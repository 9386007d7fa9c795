"""Multi-scale resize, horizontal flip and random crop of (image, targets)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from tailseg.data.transforms.common import randint, resize_sample, scaled_size, tighten, uniform
from tailseg.structures.targets import Targets


def random_resize(
    image: Tensor, t: Targets, g: torch.Generator, short_range: tuple[int, int], max_size: int
) -> tuple[Tensor, Targets]:
    """Short side drawn uniformly in `short_range`, long side capped at `max_size`."""
    short = randint(g, short_range[0], short_range[1])
    return resize_sample(image, t, scaled_size(*image.shape[-2:], short, max_size))


def hflip(image: Tensor, t: Targets) -> tuple[Tensor, Targets]:
    """Mirror left–right (twice is the identity)."""
    w = image.shape[-1]
    boxes = t.boxes.clone()
    boxes[:, [0, 2]] = w - t.boxes[:, [2, 0]]
    return image.flip(-1), replace(t, masks=t.masks.flip(-1), boxes=boxes)


def random_hflip(
    image: Tensor, t: Targets, g: torch.Generator, prob: float = 0.5
) -> tuple[Tensor, Targets]:
    return hflip(image, t) if uniform(g) < prob else (image, t)


def crop(image: Tensor, t: Targets, y0: int, x0: int, h: int, w: int) -> tuple[Tensor, Targets]:
    """The window [y0, y0+h) × [x0, x0+w); instances left without pixels are dropped."""
    t = replace(t, masks=t.masks[:, y0 : y0 + h, x0 : x0 + w], image_size=(h, w))
    return image[:, y0 : y0 + h, x0 : x0 + w], tighten(t)


def random_crop(
    image: Tensor,
    t: Targets,
    g: torch.Generator,
    prob: float = 0.5,
    min_fraction: float = 0.6,
    tries: int = 10,
) -> tuple[Tensor, Targets]:
    """With probability `prob`, a window of 60–100% of each side; a window that would leave no
    instance of an annotated image is drawn again (up to `tries` times, then no crop)."""
    if uniform(g) >= prob:
        return image, t
    h, w = image.shape[-2:]
    for _ in range(tries):
        ch, cw = round(h * uniform(g, min_fraction, 1.0)), round(w * uniform(g, min_fraction, 1.0))
        y0, x0 = randint(g, 0, h - ch), randint(g, 0, w - cw)
        out = crop(image, t, y0, x0, ch, cw)
        if len(out[1]) > 0 or len(t) == 0:
            return out
    return image, t
