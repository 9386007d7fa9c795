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


@dataclass
class ImageBatch:
    tensor: Tensor  # (B, 3, H_pad, W_pad) float, normalised
    image_sizes: list[tuple[int, int]]  # (H, W) of each image before padding


def batch_images(
    images: list[Tensor],
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    size_divisor: int = 32,
) -> ImageBatch:
    """images: (3, H_i, W_i) uint8 or float in 0–255, RGB → ImageBatch."""
    if not images:
        raise ValueError("batch_images: no images")
    device = images[0].device
    m = torch.tensor(mean, device=device).view(3, 1, 1)
    s = torch.tensor(std, device=device).view(3, 1, 1)
    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    h = -(-max(h for h, _ in sizes) // size_divisor) * size_divisor
    w = -(-max(w for _, w in sizes) // size_divisor) * size_divisor
    out = torch.zeros((len(images), 3, h, w), device=device)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = (im.float() - m) / s
    return ImageBatch(out, sizes)
