"""AdamW with parameter groups, and the linear warm-up + step-decay learning-rate schedule."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed")
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
# which parameters AdamW does not decay (`train.no_decay`):
#   norms_biases_positions — norm layers, biases (every 1-d parameter) and position tables;
#   norms_positions — the Swin recipe (mmdetection / CBNetV2 Swin configs, paramwise_cfg
#     custom_keys absolute_pos_embed, relative_position_bias_table, norm → decay_mult 0):
#     norm layers and position tables only, biases are decayed.
NoDecay = Literal["norms_biases_positions", "norms_positions"]


def parameter_groups(
    model: nn.Module, weight_decay: float, no_decay: NoDecay = "norms_biases_positions"
) -> list[dict]:
    """[decayed parameters, undecayed ones (weight_decay 0)] by the `no_decay` policy; frozen
    parameters are left out."""
    if no_decay not in ("norms_biases_positions", "norms_positions"):
        raise ValueError(f"no_decay: unknown policy {no_decay!r}")
    decay, exempt = [], []
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters()}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        bias = no_decay == "norms_biases_positions" and p.ndim <= 1
        if bias or id(p) in norm_ids or name.endswith(NO_DECAY_NAMES):
            exempt.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    no_decay: NoDecay = "norms_biases_positions",
) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`; on CUDA the fused kernel, which also takes the gradient
    scaler's inf check on the device (no host sync in `GradScaler.step`)."""
    groups = parameter_groups(model, weight_decay, no_decay)
    params = [p for g in groups for p in g["params"]]
    fused = True if params and all(p.is_cuda for p in params) else None
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=fused)


def lr_factor(
    iteration: int,
    iters_per_epoch: int,
    warmup_iters: int,
    warmup_ratio: float,
    steps: tuple[int, ...],
    gamma: float = 0.1,
) -> float:
    """Multiplier of the base lr at a (0-based) iteration: linear warm-up from `warmup_ratio`
    over `warmup_iters`, times `gamma` for every epoch boundary in `steps` already reached
    (the report: 20 epochs, steps at 16 and 19)."""
    epoch = iteration // max(iters_per_epoch, 1)
    factor = gamma ** sum(epoch >= s for s in steps)
    if iteration < warmup_iters:
        factor *= warmup_ratio + (1 - warmup_ratio) * iteration / warmup_iters
    return factor
