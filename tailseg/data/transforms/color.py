"""Colour jitter: brightness, contrast, saturation and hue, each a random factor."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from tailseg.data.transforms.common import uniform
from tailseg.structures.targets import Targets


def color_jitter(
    image: Tensor,
    t: Targets,
    g: torch.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    hue: float = 0.02,
    prob: float = 0.8,
) -> tuple[Tensor, Targets]:
    """With probability `prob`: factors in [1 - x, 1 + x] (hue: shift in [-hue, hue])."""
    if uniform(g) >= prob:
        return image, t
    image = TF.adjust_brightness(image, uniform(g, 1 - brightness, 1 + brightness))
    image = TF.adjust_contrast(image, uniform(g, 1 - contrast, 1 + contrast))
    image = TF.adjust_saturation(image, uniform(g, 1 - saturation, 1 + saturation))
    image = TF.adjust_hue(image, uniform(g, -hue, hue))
    return image, t
