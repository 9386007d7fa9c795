"""Seesaw loss (Wang et al., 2021) with an objectness pair, for long-tailed classification.

Logits have C + 2 columns: C classes, then objectness (foreground, background). For a
foreground RoI of class i and every other class j the class logit z_j becomes z_j + log S_ij,
S_ij = M_ij · C_ij, with

    mitigation    M_ij = (N_j / N_i)^p   if N_j < N_i, else 1
    compensation  C_ij = (σ_j / σ_i)^q   if σ_j > σ_i, else 1

N the cumulative counts of sampled foreground labels (at least 1), σ the softmax of the detached
class logits (σ_i at least eps). The Seesaw cross-entropy is taken over foreground RoIs only,
the objectness cross-entropy over all sampled RoIs; both are divided by the number of sampled
RoIs. At inference p(class j) = softmax(class logits)_j · softmax(objectness)_foreground.

Example (C = 3, p = 1, q = 0, counts N = (100, 10, 1), one RoI of class 0, class logits
(z0, z1, z2) = (0, 0, 0)): M_01 = 10/100, M_02 = 1/100, so the logits become
(0, log 0.1, log 0.01) and the loss is -log(1 / (1 + 0.1 + 0.01)) = log 1.11 ≈ 0.1044, less
than plain cross-entropy's log 3: the rare classes 1 and 2 are pushed down less by class 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


def seesaw_loss(
    logits: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    *,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
) -> dict[str, Tensor]:
    """logits (R, C+2), labels (R,) in 0..C (C = background), class_counts (C,) →
    {"loss_cls", "loss_objectness"}, each summed and divided by R."""
    r, c = logits.shape[0], logits.shape[1] - 2
    n = max(r, 1)
    fg = labels < c
    objectness = logits[:, c:]  # (R, 2): foreground, background
    loss_obj = F.cross_entropy(objectness, (~fg).long(), reduction="sum") / n
    z = logits[fg, :c]  # (P, C)
    y = labels[fg]  # (P,)
    if z.numel() == 0:
        return {"loss_cls": logits.sum() * 0.0, "loss_objectness": loss_obj}
    log_s = torch.zeros_like(z)  # log S_ij, 0 on the label column
    if p > 0:
        counts = class_counts.to(z.dtype).clamp(min=1)
        ratio = counts[None, :] / counts[y][:, None]  # (P, C): N_j / N_i
        log_s = log_s + torch.where(ratio < 1, p * ratio.log(), torch.zeros_like(ratio))
    if q > 0:
        sigma = F.softmax(z.detach(), dim=1)  # (P, C)
        self_sigma = sigma.gather(1, y[:, None]).clamp(min=eps)  # (P, 1)
        ratio = sigma / self_sigma
        log_s = log_s + torch.where(ratio > 1, q * ratio.log(), torch.zeros_like(ratio))
    log_s = log_s.scatter(1, y[:, None], 0.0)  # j = i is left alone
    loss_cls = F.cross_entropy(z + log_s, y, reduction="sum") / n
    return {"loss_cls": loss_cls, "loss_objectness": loss_obj}


class SeesawCounts(nn.Module):
    """Cumulative counts of sampled foreground labels of one cascade stage (a buffer, so it is
    saved in checkpoints); `update` is called explicitly before each loss."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.float64))

    @torch.no_grad()
    def update(self, labels: Tensor) -> None:
        """Add this step's foreground labels (of every rank, under torch.distributed)."""
        fg = labels[labels < self.counts.numel()]
        step = torch.bincount(fg, minlength=self.counts.numel()).to(self.counts)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(step)
        self.counts += step


class SeesawLoss:
    """The `ClassificationLoss` of the box heads when `roi.cls_loss: seesaw`."""

    def __init__(self, p: float = 0.8, q: float = 2.0, eps: float = 1e-2) -> None:
        self.p, self.q, self.eps = p, q, eps

    def num_outputs(self, num_classes: int) -> int:
        return num_classes + 2

    def new_state(self, num_classes: int) -> SeesawCounts:
        return SeesawCounts(num_classes)

    def __call__(
        self, logits: Tensor, labels: Tensor, state: nn.Module | None = None
    ) -> dict[str, Tensor]:
        """The loss with the stage's counts, which the caller has updated with `labels`."""
        if not isinstance(state, SeesawCounts):
            raise TypeError("SeesawLoss needs the stage's SeesawCounts")
        return seesaw_loss(logits, labels, state.counts, p=self.p, q=self.q, eps=self.eps)

    def probabilities(self, logits: Tensor) -> Tensor:
        c = logits.shape[1] - 2
        return F.softmax(logits[:, :c], dim=1) * F.softmax(logits[:, c:], dim=1)[:, :1]
