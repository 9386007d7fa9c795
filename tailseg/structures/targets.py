"""Typed per-image ground truth that the data pipeline yields and the model consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class Targets:
    """Ground truth of one image.

    boxes (M, 4) float32 xyxy abs px · labels (M,) int64 in 0..C-1 · masks (M, H, W) bool ·
    iscrowd (M,) bool (crowd regions: ignored as positives, kept for the COCO protocol) ·
    image_id · image_size (H, W) of `masks` and of the image tensor · neg_labels (K,) and
    not_exhaustive_labels (L,) int64: the LVIS federated fields as contiguous labels.
    """

    boxes: Tensor
    labels: Tensor
    masks: Tensor
    iscrowd: Tensor
    image_id: int
    image_size: tuple[int, int]
    neg_labels: Tensor
    not_exhaustive_labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __post_init__(self) -> None:
        m = len(self)
        h, w = self.image_size
        if self.boxes.shape != (m, 4):
            raise ValueError(f"boxes must be ({m}, 4), got {tuple(self.boxes.shape)}")
        if self.masks.shape != (m, h, w):
            raise ValueError(f"masks must be ({m}, {h}, {w}), got {tuple(self.masks.shape)}")
        if self.iscrowd.shape != (m,):
            raise ValueError(f"iscrowd must be ({m},), got {tuple(self.iscrowd.shape)}")

    def select(self, keep: Tensor) -> Targets:
        """Instances at `keep` (bool mask or index tensor); image-level fields unchanged."""
        return replace(
            self,
            boxes=self.boxes[keep],
            labels=self.labels[keep],
            masks=self.masks[keep],
            iscrowd=self.iscrowd[keep],
        )

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Targets:
        return replace(
            self,
            boxes=fn(self.boxes),
            labels=fn(self.labels),
            masks=fn(self.masks),
            iscrowd=fn(self.iscrowd),
            neg_labels=fn(self.neg_labels),
            not_exhaustive_labels=fn(self.not_exhaustive_labels),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Targets:
        """On `device`; `non_blocking` copies from pinned memory overlap with compute."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Targets:
        """In page-locked memory (the DataLoader calls this with `pin_memory=True`)."""
        return self._map(Tensor.pin_memory)

    @staticmethod
    def empty(image_id: int, image_size: tuple[int, int]) -> Targets:
        h, w = image_size
        none = torch.zeros(0, dtype=torch.int64)
        return Targets(
            boxes=torch.zeros(0, 4),
            labels=none,
            masks=torch.zeros(0, h, w, dtype=torch.bool),
            iscrowd=torch.zeros(0, dtype=torch.bool),
            image_id=image_id,
            image_size=image_size,
            neg_labels=none,
            not_exhaustive_labels=none,
        )
