"""Region proposal network: anchors → objectness and deltas → losses and proposals.

Training targets, per image: only anchors inside the image (its own size, within
`allowed_border` pixels; mmdetection's RPN `allowed_border=0`) are matched to the ground truth
and sampled; the others are ignored (label -1). `allowed_border=None` uses every anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from tailseg.models.assign import AnchorGenerator, BoxCoder, Matcher, Sampler, inside_image
from tailseg.models.heads import RPNHead
from tailseg.models.losses import rpn_loss


@dataclass(frozen=True)
class ProposalSettings:
    pre_nms_per_level: int = 2000
    max_proposals: int = 2000
    nms_iou: float = 0.7


class RPN(nn.Module):
    def __init__(
        self,
        head: RPNHead,
        anchors: AnchorGenerator,
        matcher: Matcher,
        sampler: Sampler,
        coder: BoxCoder,
        train_settings: ProposalSettings,
        test_settings: ProposalSettings,
        loss_beta: float = 1 / 9,
        allowed_border: float | None = 0.0,
    ) -> None:
        super().__init__()
        self.head = head
        self.anchors = anchors
        self.matcher = matcher
        self.sampler = sampler
        self.coder = coder
        self.train_settings = train_settings
        self.test_settings = test_settings
        self.loss_beta = loss_beta
        self.allowed_border = allowed_border

    def forward(
        self,
        feats: list[Tensor],
        image_sizes: list[tuple[int, int]],
        gt_boxes: list[Tensor] | None = None,
        generators: list[torch.Generator] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """feats P2–P6 → (proposals per image (N_i, 4) xyxy, detached; losses when gt_boxes)."""
        logits, deltas, anchors = self.outputs(feats)
        settings = self.train_settings if self.training else self.test_settings
        proposals = [b for b, _ in self.proposals(logits, deltas, anchors, image_sizes, settings)]
        losses: dict[str, Tensor] = {}
        if gt_boxes is not None:
            losses = self.losses(logits, deltas, anchors, gt_boxes, image_sizes, generators)
        return proposals, losses

    def outputs(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Objectness logits and deltas per level, and the levels' anchors."""
        logits, deltas = self.head(feats)
        anchors = self.anchors([tuple(f.shape[-2:]) for f in feats], feats[0].device)
        return logits, deltas, anchors

    def losses_only(
        self,
        feats: list[Tensor],
        image_sizes: list[tuple[int, int]],
        gt_boxes: list[Tensor],
        generators: list[torch.Generator] | None = None,
    ) -> dict[str, Tensor]:
        """The losses without proposals (a CBNet assistant's pyramid: the lead proposes)."""
        logits, deltas, anchors = self.outputs(feats)
        return self.losses(logits, deltas, anchors, gt_boxes, image_sizes, generators)

    @torch.no_grad()
    def proposals(
        self,
        logits: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        image_sizes: list[tuple[int, int]],
        s: ProposalSettings,
    ) -> list[tuple[Tensor, Tensor]]:
        """Per image (boxes (N, 4), objectness (N,)): top `pre_nms_per_level` per level,
        decoded, clipped, NMS per level, the best `max_proposals`."""
        out = []
        for i, size in enumerate(image_sizes):
            boxes, scores, levels = [], [], []
            for lvl, (lg, dl, an) in enumerate(zip(logits, deltas, anchors, strict=True)):
                score = lg[i].sigmoid()  # (HWA,)
                k = min(s.pre_nms_per_level, score.numel())
                score, idx = score.topk(k)
                boxes.append(self.coder.decode(an[idx], dl[i][idx], size))
                scores.append(score)
                levels.append(torch.full_like(idx, lvl))
            b, sc, lv = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
            valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
            b, sc, lv = b[valid], sc[valid], lv[valid]
            keep = batched_nms(b, sc, lv, s.nms_iou)[: s.max_proposals]  # sorted by score
            out.append((b[keep], sc[keep]))
        return out

    @torch.no_grad()
    def propose(
        self, feats: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[tuple[Tensor, Tensor]]:
        """Test-time proposals with their objectness, per image."""
        logits, deltas, anchors = self.outputs(feats)
        return self.proposals(logits, deltas, anchors, image_sizes, self.test_settings)

    def losses(
        self,
        logits: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        gt_boxes: list[Tensor],
        image_sizes: list[tuple[int, int]],
        generators: list[torch.Generator] | None = None,
    ) -> dict[str, Tensor]:
        all_anchors = torch.cat(anchors)  # (N, 4)
        obj = torch.cat(logits, dim=1)  # (B, N)
        dts = torch.cat(deltas, dim=1)  # (B, N, 4)
        labels, targets = [], []
        for k, (gt, size) in enumerate(zip(gt_boxes, image_sizes, strict=True)):
            g = generators[k] if generators else None
            lab, t = self.anchor_targets(all_anchors, gt, size, g)
            labels.append(lab)
            targets.append(t)
        return rpn_loss(
            obj.reshape(-1),
            dts.reshape(-1, 4),
            torch.cat(labels),
            torch.cat(targets),
            self.loss_beta,
        )

    @torch.no_grad()
    def anchor_targets(
        self,
        anchors: Tensor,
        gt: Tensor,
        image_size: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """anchors (N, 4), gt (M, 4) of one (H, W) image → labels (N,) 1 / 0 / -1 (not sampled)
        and target deltas (N, 4) (valid where 1). Anchors outside the image take no part: the
        matcher (its low-quality matches included) and the sampler see the inside ones only."""
        labels = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
        deltas = torch.zeros_like(anchors)
        if self.allowed_border is None:
            idx = torch.arange(len(anchors), device=anchors.device)
        else:
            idx = torch.nonzero(inside_image(anchors, image_size, self.allowed_border)).flatten()
        if not idx.numel():
            return labels, deltas
        inside = anchors[idx]
        a = self.matcher(inside, gt)
        pos, neg = self.sampler(a.labels, generator)
        labels[idx[pos]], labels[idx[neg]] = 1, 0
        if pos.numel():
            deltas[idx[pos]] = self.coder.encode(inside[pos], gt[a.matches[pos]])
        return labels, deltas
