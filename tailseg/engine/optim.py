"""AdamW with parameter groups, and the linear warm-up + step-decay learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay for weights of convs and linears; none for norms, biases, position tables."""
    decay, no_decay = [], []
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)
    no_decay_ids = {
        id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters()
    }
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or id(p) in no_decay_ids or name.endswith(NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))


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
