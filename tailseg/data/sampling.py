"""Repeat factor sampling (Gupta et al., LVIS 2019) for one process or many (DDP).

r(c) = max(1, sqrt(t / f(c))) with f(c) the fraction of training images containing class c;
an image repeats r(I) = max over its classes of r(c) times per epoch (1 without annotations).
`category_repeat_factors` gives r(c) itself (balanced copy-paste keeps instances by it).
Each epoch rounds r(I) stochastically (floor + Bernoulli of the fraction) with a generator
seeded by (seed, epoch) — the same on every rank — shuffles, pads to a multiple of the number
of ranks by repeating its head, and gives rank k every k-th index, so ranks are disjoint and
together cover the epoch. `mode="ceil"` repeats ceil(r(I)) times every epoch (mmdetection's
ClassBalancedDataset).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

from tailseg.data.annotations import AnnotationFile
from tailseg.data.packed import PackedAnnotations

log = logging.getLogger("tailseg.data")


def category_repeat_factors(
    ann: AnnotationFile | PackedAnnotations, threshold: float = 0.001, images: list | None = None
) -> dict[int, float]:
    """r(c) = max(1, sqrt(t / f(c))) by category id, for the categories with a non-crowd
    instance in `images` (default: every image of the file, or of the packed dataset); f(c) is
    the fraction of `images` containing c."""
    _, cats, n = _category_pairs(ann, images)
    return _by_category(cats, n, threshold)


def repeat_factors(
    ann: AnnotationFile | PackedAnnotations, threshold: float = 0.001, images: list | None = None
) -> np.ndarray:
    """r(I) (N,) float64 for `images` (default: every image of the file in file order, or of
    the packed dataset in its order); 1 for an image without non-crowd instances."""
    rows, cats, n = _category_pairs(ann, images)
    r_cat = _by_category(cats, n, threshold)
    factors = np.ones(n)
    np.maximum.at(factors, rows, np.array([r_cat[int(c)] for c in cats], dtype=np.float64))
    return factors


def _by_category(cats: np.ndarray, n: int, threshold: float) -> dict[int, float]:
    """r(c) from the category ids of the (image, category) pairs among n images."""
    ids, image_count = np.unique(cats, return_counts=True)
    return {
        int(c): max(1.0, math.sqrt(threshold / (int(k) / n)))
        for c, k in zip(ids, image_count, strict=True)
    }


def _category_pairs(
    ann: AnnotationFile | PackedAnnotations, images: list | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions in `images`, category ids) of each image and category it has a non-crowd
    instance of, and the number of images."""
    if isinstance(ann, PackedAnnotations):
        if images is not None:
            raise ValueError("a packed dataset's images are its rows: pass images=None")
        return (*ann.category_pairs(), len(ann))
    images = ann.images if images is None else images
    pairs = sorted(
        {(i, a.category_id) for i, im in enumerate(images) for a in ann.anns_by_image[im.id]
         if not a.iscrowd}
    )  # fmt: skip
    both = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return both[:, 0].copy(), both[:, 1].copy(), len(images)


def rfs_summary(factors: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "rfs_threshold": threshold,
        "rfs_epoch_length": float(factors.sum()),  # stochastic rounding, expected
        "rfs_epoch_length_ceil": float(np.ceil(factors).sum()),  # mmdetection's repeats
        "rfs_images_repeated": int((factors > 1).sum()),
        "rfs_mean_factor": float(factors.mean()) if len(factors) else 0.0,
        "rfs_max_factor": float(factors.max(initial=0.0)),
    }


class RepeatFactorSampler(torch.utils.data.Sampler[int]):
    def __init__(
        self,
        factors: np.ndarray,
        *,
        seed: int = 0,
        mode: Literal["stochastic", "ceil"] = "stochastic",
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        if mode not in ("stochastic", "ceil"):
            raise ValueError(f"mode: {mode!r} is not stochastic or ceil")
        self.factors = np.asarray(factors, dtype=np.float64)
        self.seed, self.mode, self.shuffle = seed, mode, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        log.info(
            "repeat factor sampling (%s): %d images → about %.0f per epoch",
            mode,
            len(self.factors),
            self.factors.sum() if mode == "stochastic" else np.ceil(self.factors).sum(),
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Every rank's indices of `epoch` (padded to a multiple of the rank count)."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.mode == "ceil":
            copies = np.ceil(self.factors).astype(np.int64)
        else:
            whole = np.floor(self.factors)
            copies = (whole + (rng.random(len(self.factors)) < self.factors - whole)).astype(
                np.int64
            )
        idx = np.repeat(np.arange(len(self.factors)), copies)
        if self.shuffle:
            idx = idx[rng.permutation(len(idx))]
        pad = -len(idx) % self.num_replicas
        return np.concatenate([idx, idx[:pad]]) if pad else idx

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch)[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return len(self.epoch_indices(self.epoch)) // self.num_replicas
