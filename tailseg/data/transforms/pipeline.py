"""The training pipeline of the report, as a torch Dataset over a base `InstanceDataset`.

Item i (an index from the repeat-factor sampler) becomes, with a generator seeded by
(seed, epoch, i): with probability `mosaic_prob` a mosaic of image i and three images drawn
with probability proportional to their repeat factors (a 3:4 canvas of four half-size tiles,
sized like any image: short side in `mosaic_scale_range`, by default `scale_range`), otherwise
image i at a short side drawn in `scale_range`; then, with probability `copy_paste_prob`,
objects pasted from another image drawn the same way (each kept with a probability ∝ its
class's repeat factor, see `copy_paste.balanced_keep_prob`; the source's scale jittered in
`copy_paste_scale_range`); then flip, crop and colour jitter. Every step keeps boxes equal to
the tight boxes of the masks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tailseg.config import AugmentConfig
from tailseg.data.dataset import InstanceDataset
from tailseg.data.sampling import category_repeat_factors
from tailseg.data.transforms.color import color_jitter
from tailseg.data.transforms.common import randint, scaled_size, tighten, uniform
from tailseg.data.transforms.copy_paste import balanced_keep_prob, copy_paste
from tailseg.data.transforms.geometry import random_crop, random_hflip, random_resize
from tailseg.data.transforms.mosaic import ASPECT, mosaic
from tailseg.structures.targets import Targets


class AugmentedDataset(torch.utils.data.Dataset):
    def __init__(
        self, base: InstanceDataset, factors: np.ndarray, cfg: AugmentConfig, seed: int = 0
    ) -> None:
        if len(factors) != len(base):
            raise ValueError(f"{len(factors)} repeat factors for {len(base)} images")
        self.base = base
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0
        self.draw_p = torch.as_tensor(factors / factors.sum(), dtype=torch.float64)
        # r(c) by label (C,), 1 for classes without instances among the images
        self.class_factors = torch.ones(base.num_classes)
        by_id = category_repeat_factors(base.ann, cfg.rfs_threshold)
        for cid, r in by_id.items():
            self.class_factors[base.ann.label_of[cid]] = r

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _draw(self, g: torch.Generator) -> tuple[Tensor, Targets]:
        """An image of the repeat-factor stream (probability proportional to r(I))."""
        j = int(torch.multinomial(self.draw_p, 1, generator=g))
        return self._load(j)

    def _load(self, index: int) -> tuple[Tensor, Targets]:
        image, t = self.base[index]
        return image, tighten(t)

    def paste(self, image: Tensor, t: Targets, g: torch.Generator) -> tuple[Tensor, Targets]:
        """Copy-paste from a source drawn ∝ r(I), instances kept class-balanced (or, with
        `copy_paste_balanced` off, each with the same probability)."""
        c = self.cfg
        src_img, src = self._draw(g)
        keep: float | Tensor = c.copy_paste_select_prob
        if c.copy_paste_balanced:
            keep = balanced_keep_prob(src.labels, src.iscrowd, self.class_factors, keep)
        return copy_paste(
            image,
            t,
            (src_img, src),
            g,
            keep,
            scale_range=c.copy_paste_scale_range,
            flip_prob=c.flip_prob,
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Targets]:
        c = self.cfg
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        )
        if uniform(g) < c.mosaic_prob:
            samples = [self._load(index)] + [self._draw(g) for _ in range(3)]
            short = randint(g, *(c.mosaic_scale_range or c.scale_range))
            image, t = mosaic(samples, g, scaled_size(*ASPECT, short, c.max_size))
        else:
            image, t = random_resize(*self._load(index), g, c.scale_range, c.max_size)
        if uniform(g) < c.copy_paste_prob:
            image, t = self.paste(image, t, g)
        image, t = random_hflip(image, t, g, c.flip_prob)
        image, t = random_crop(image, t, g, c.crop_prob, c.crop_min_fraction)
        image, t = color_jitter(
            image, t, g, c.brightness, c.contrast, c.saturation, c.hue, c.jitter_prob
        )
        return image, t
