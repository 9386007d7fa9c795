"""Box head: two shared fully connected layers, a classifier and box deltas — one box per RoI
(class-agnostic, as HTC and Cascade R-CNN) or one per class (Mask R-CNN's default).

The classifier is linear or cosine (`CosineLinear`: temperature × normalised features ·
normalised weights, plus a bias), and has as many outputs as the classification loss asks for
(C + 1 for softmax, C + 2 for Seesaw's objectness pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CosineLinear(nn.Module):
    """logits = temperature · (x / (|x| + eps)) · (W / (|W| + eps))ᵀ + b, as mmdetection's
    `NormedLinear` (temperature 20, eps 1e-6; the bias is added after the temperature).

    W starts as N(0, 0.01²) and b at 0; both are learned. A state dict saved before the bias
    existed lacks `bias`, so a strict load names the missing `…cls.bias` key.
    """

    def __init__(
        self, in_features: int, out_features: int, temperature: float = 20.0, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.weight, std=0.01)
        self.temperature = temperature
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x (N, in_features) → logits (N, out_features)."""
        x = x / (x.norm(dim=1, keepdim=True) + self.eps)
        w = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        return F.linear(self.temperature * x, w, self.bias)


class BoxHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        roi_size: int = 7,
        fc_dim: int = 1024,
        cosine: bool = False,
        temperature: float = 20.0,
        box_classes: int = 1,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * roi_size * roi_size, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)
        if cosine:
            self.cls = CosineLinear(fc_dim, num_outputs, temperature)
        else:
            self.cls = nn.Linear(fc_dim, num_outputs)
            nn.init.normal_(self.cls.weight, std=0.01)
            nn.init.zeros_(self.cls.bias)
        self.reg = nn.Linear(fc_dim, 4 * box_classes)  # class-agnostic (1) or per class (C)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.reg.bias)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """roi_feats (R, C, 7, 7) → class logits (R, num_outputs), box deltas (R, 4) or, one
        box per class, (R, 4·C) (class c's deltas at 4c..4c+3)."""
        x = F.relu(self.fc1(roi_feats.flatten(1)))  # (R, fc_dim)
        x = F.relu(self.fc2(x))
        return self.cls(x), self.reg(x)


def class_deltas(deltas: Tensor, labels: Tensor) -> Tensor:
    """Box deltas (R, 4), or (R, 4·C) one box per class → (R, 4): each RoI's `labels` class's
    (a label ≥ C, the background, takes the last class's: never used for a background RoI)."""
    if deltas.shape[1] == 4:
        return deltas
    per_class = deltas.view(len(deltas), -1, 4)  # (R, C, 4)
    rows = torch.arange(len(deltas), device=deltas.device)
    return per_class[rows, labels.clamp(max=per_class.shape[1] - 1)]
