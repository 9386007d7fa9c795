"""Batching: normalise images with the backbone's pixel statistics and pad them together.

Resizing belongs to the data pipeline; here images keep their size and are zero-padded (after
normalisation) at the bottom and right to a common size divisible by `size_divisor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0–255 scale
IMAGENET_STD = (58.395, 57.12, 57.375)
SIZE_DIVISOR = 32  # the coarsest backbone stride


def padded_size(h: int, w: int, size_divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    """(h, w) rounded up to multiples of `size_divisor`: the smallest canvas an image fits."""
    return -(-h // size_divisor) * size_divisor, -(-w // size_divisor) * size_divisor


@dataclass
class ImageBatch:
    tensor: Tensor  # (B, 3, H_pad, W_pad) float, normalised
    image_sizes: list[tuple[int, int]]  # (H, W) of each image before padding


def batch_images(
    images: list[Tensor],
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    size_divisor: int = SIZE_DIVISOR,
) -> ImageBatch:
    """images: (3, H_i, W_i) uint8 or float in 0–255, RGB → ImageBatch.

    Every image's features depend on the canvas it is padded into (receptive fields reach into
    the padding), so a small image batched with a large one is not predicted as it is alone;
    inference batches only images of one `padded_size` (`engine.evaluate.predict_batch`).
    """
    if not images:
        raise ValueError("batch_images: no images")
    device = images[0].device
    m = torch.tensor(mean, device=device).view(3, 1, 1)
    s = torch.tensor(std, device=device).view(3, 1, 1)
    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    h, w = padded_size(max(h for h, _ in sizes), max(w for _, w in sizes), size_divisor)
    out = torch.zeros((len(images), 3, h, w), device=device)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = (im.float() - m) / s
    return ImageBatch(out, sizes)
