"""Transforms of (image uint8 (3, H, W), Targets, torch.Generator) → (image, Targets)."""

from tailseg.data.transforms.color import color_jitter
from tailseg.data.transforms.copy_paste import copy_paste
from tailseg.data.transforms.geometry import crop, hflip, random_crop, random_hflip, random_resize
from tailseg.data.transforms.mosaic import mosaic

__all__ = [
    "color_jitter",
    "copy_paste",
    "crop",
    "hflip",
    "mosaic",
    "random_crop",
    "random_hflip",
    "random_resize",
]
