"""Random sampling of a fixed number of candidates with a target share of positives."""

from __future__ import annotations

import torch
from torch import Tensor


class Sampler:
    """Keep at most `num * pos_fraction` positives (random), fill up to `num` with negatives."""

    def __init__(self, num: int, pos_fraction: float) -> None:
        self.num = num
        self.pos_fraction = pos_fraction

    @torch.no_grad()
    def __call__(
        self, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """labels (N,) 1/0/-1 → (positive indices, negative indices), each in random order."""
        pos = torch.nonzero(labels == 1).flatten()
        neg = torch.nonzero(labels == 0).flatten()
        num_pos = min(pos.numel(), int(self.num * self.pos_fraction))
        num_neg = min(neg.numel(), self.num - num_pos)
        pos = pos[_perm(pos.numel(), labels.device, generator)[:num_pos]]
        neg = neg[_perm(neg.numel(), labels.device, generator)[:num_neg]]
        return pos, neg


def _perm(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    # randperm on the CPU then moved: one code path for every device and generator
    return torch.randperm(n, generator=generator).to(device)
