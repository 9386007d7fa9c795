"""Classification losses of the box head and how their logits become class probabilities.

A classification loss tells the box head how many outputs it needs, computes its loss from
(logits, labels) as a dict, and turns (averaged) logits into foreground probabilities (R, C).
Labels are 0..C-1 for classes and C for background.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn.functional as F
from torch import Tensor


class ClassificationLoss(Protocol):
    def num_outputs(self, num_classes: int) -> int: ...

    def __call__(self, logits: Tensor, labels: Tensor, **state: Tensor) -> dict[str, Tensor]: ...

    def probabilities(self, logits: Tensor) -> Tensor: ...


class SoftmaxCrossEntropy:
    """C + 1 outputs (background last); mean cross-entropy over sampled RoIs."""

    def num_outputs(self, num_classes: int) -> int:
        return num_classes + 1

    def __call__(self, logits: Tensor, labels: Tensor, **state: Tensor) -> dict[str, Tensor]:
        if logits.numel() == 0:
            return {"loss_cls": logits.sum() * 0.0}
        return {"loss_cls": F.cross_entropy(logits, labels)}

    def probabilities(self, logits: Tensor) -> Tensor:
        return F.softmax(logits, dim=1)[:, :-1]
