"""Exponential moving average of the weights, with a momentum that warms up.

momentum(t) = (1 - m) · exp(-(1 + t) / gamma) + m: close to 1 at first (the average follows the
weights), decaying to m (mmdetection's ExpMomentumEMA); ema ← (1 - momentum) · ema +
momentum · weights, for parameters and floating-point buffers (Seesaw counts included).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA(nn.Module):
    def __init__(self, model: nn.Module, momentum: float = 2e-4, gamma: float = 2000.0) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.momentum, self.gamma = momentum, gamma
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_momentum(self) -> float:
        t = int(self.steps)
        return (1 - self.momentum) * math.exp(-(1 + t) / self.gamma) + self.momentum

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        m = self.current_momentum()
        src = dict(model.state_dict())
        mine, theirs = [], []
        for name, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                mine.append(v)
                theirs.append(src[name].detach().to(v.dtype))
            else:
                v.copy_(src[name])
        if mine:  # one fused kernel per op over all tensors (a GPU launches 2, not 2 per tensor)
            torch._foreach_mul_(mine, 1 - m)
            torch._foreach_add_(mine, theirs, alpha=m)
        self.steps += 1
