"""Classification losses of the box head and how their logits become class probabilities.

A classification loss tells the box head how many outputs it needs, makes the per-stage state
it keeps (a module whose buffers are saved in checkpoints; the cascade calls `update(labels)`
before each loss), computes its loss from (logits, labels, state) as a dict, and turns
(averaged) logits into foreground probabilities (R, C). Labels are 0..C-1 for classes and C
for background.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn.functional as F
from torch import Tensor, nn


class ClassificationLoss(Protocol):
    def num_outputs(self, num_classes: int) -> int: ...

    def new_state(self, num_classes: int) -> nn.Module: ...

    def __call__(
        self, logits: Tensor, labels: Tensor, state: nn.Module | None = None
    ) -> dict[str, Tensor]: ...

    def probabilities(self, logits: Tensor) -> Tensor: ...


class NoState(nn.Module):
    """The state of a loss that keeps none."""

    def update(self, labels: Tensor) -> None:
        return None


class SoftmaxCrossEntropy:
    """C + 1 outputs (background last); mean cross-entropy over sampled RoIs."""

    def num_outputs(self, num_classes: int) -> int:
        return num_classes + 1

    def new_state(self, num_classes: int) -> nn.Module:
        return NoState()

    def __call__(
        self, logits: Tensor, labels: Tensor, state: nn.Module | None = None
    ) -> dict[str, Tensor]:
        if logits.numel() == 0:
            return {"loss_cls": logits.sum() * 0.0}
        return {"loss_cls": F.cross_entropy(logits, labels)}

    def probabilities(self, logits: Tensor) -> Tensor:
        return F.softmax(logits, dim=1)[:, :-1]
