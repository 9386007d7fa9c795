"""Hybrid Task Cascade (Chen et al., 2019) without the semantic branch.

Training, per stage i (IoU threshold 0.5 / 0.6 / 0.7, loss weight 1 / 0.5 / 0.25):
  1. assign the current boxes (ground truth added as proposals) and sample 512 RoIs, 25% fg;
  2. box head on them → classification and class-agnostic regression losses;
  3. interleaved execution: regress the sampled boxes with this stage's head, drop the ground
     truth, re-assign and re-sample them, and train this stage's mask head on the new positives;
  4. mask information flow: stage i's mask head adds a 1×1 conv of the features of stages
     0..i-1's mask heads (run again on the same RoIs) to its input;
  5. the regressed boxes are the next stage's proposals.
Inference: the three stages' class logits are averaged, boxes come from the last stage, masks
from all mask heads (with information flow) on the final boxes, averaged — each computed only
for its detection's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tailseg.models.assign import BoxCoder, Matcher, Sampler, mask_targets
from tailseg.models.detectors.postprocess import empty_like_dets, multiclass_nms
from tailseg.models.detectors.preprocess import IMAGENET_MEAN, IMAGENET_STD, batch_images
from tailseg.models.detectors.rpn import RPN
from tailseg.models.heads import BoxHead, MultiLevelRoIAlign, rois_with_batch_index
from tailseg.models.losses import ClassificationLoss, box_regression_loss, mask_loss
from tailseg.structures.detections import InstanceDetections
from tailseg.structures.targets import Targets


@dataclass(frozen=True)
class Stage:
    iou_thr: float
    loss_weight: float
    stds: tuple[float, float, float, float]


@dataclass(frozen=True)
class RoISettings:
    num_samples: int = 512
    pos_fraction: float = 0.25
    box_loss_weight: float = 1.0
    score_thr: float = 1e-4
    nms_iou: float = 0.5
    max_per_img: int = 100
    mask_chunk: int = 128  # mask RoIs processed at once at inference (bounds memory)


@dataclass
class Samples:
    """Sampled RoIs of one image: positives first. boxes (S, 4), labels (S,) 0..C-1 or C for
    background, matches (S,) ground-truth index (valid for positives), is_gt (S,) bool."""

    boxes: Tensor
    labels: Tensor
    matches: Tensor
    is_gt: Tensor
    num_pos: int


class HybridTaskCascade(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        rpn: RPN,
        box_pool: MultiLevelRoIAlign,
        mask_pool: MultiLevelRoIAlign,
        box_heads: list[BoxHead],
        mask_heads: list[nn.Module],
        cls_loss: ClassificationLoss,
        stages: list[Stage],
        num_classes: int,
        settings: RoISettings,
        pixel_mean: tuple[float, float, float] = IMAGENET_MEAN,
        pixel_std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if not (len(box_heads) == len(mask_heads) == len(stages)):
            raise ValueError("one box head, one mask head and one Stage per cascade stage")
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn
        self.box_pool = box_pool
        self.mask_pool = mask_pool
        self.box_heads = nn.ModuleList(box_heads)
        self.mask_heads = nn.ModuleList(mask_heads)
        self.cls_loss = cls_loss
        self.cls_states = nn.ModuleList(cls_loss.new_state(num_classes) for _ in stages)
        self.stages = stages
        self.coders = [BoxCoder(s.stds) for s in stages]
        self.matchers = [Matcher(s.iou_thr, s.iou_thr) for s in stages]
        self.sampler = Sampler(settings.num_samples, settings.pos_fraction)
        self.num_classes = num_classes
        self.settings = settings
        self.pixel_mean = pixel_mean
        self.pixel_std = pixel_std

    # ------------------------------------------------------------------ entry point
    def forward(
        self,
        images: list[Tensor],
        targets: list[Targets] | None = None,
        seeds: list[int] | None = None,
    ) -> dict[str, Tensor] | list[InstanceDetections]:
        """images (3, H_i, W_i) in 0–255 → training: named losses; inference: detections.

        `seeds` (one per image) make the anchor and RoI sampling of each image a function of
        its seed alone, whatever the batch or the process it lands in.
        """
        batch = batch_images(images, self.pixel_mean, self.pixel_std)
        feats = self.neck(self.backbone(batch.tensor))  # P2..P6, (B, C, H_l, W_l)
        roi_feats = feats[: len(self.box_pool.strides)]  # P2..P5 for RoIAlign
        if not self.training:
            proposals, _ = self.rpn(feats, batch.image_sizes)
            return self.detect(roi_feats, proposals, batch.image_sizes)
        if targets is None or len(targets) != len(images):
            raise ValueError("training needs one Targets per image")
        targets = [t.select(~t.iscrowd) for t in targets]  # crowd regions are not objects
        gens = None
        if seeds is not None:
            gens = [torch.Generator().manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF) for s in seeds]
        proposals, rpn_losses = self.rpn(
            feats, batch.image_sizes, [t.boxes for t in targets], generators=gens
        )
        losses = {f"rpn.{k}": v for k, v in rpn_losses.items()}
        losses.update(self.cascade_losses(roi_feats, proposals, targets, batch.image_sizes, gens))
        return losses

    # ------------------------------------------------------------------ training
    def cascade_losses(
        self,
        feats: list[Tensor],
        proposals: list[Tensor],
        targets: list[Targets],
        image_sizes: list[tuple[int, int]],
        gens: list[torch.Generator] | None = None,
    ) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        c = self.num_classes
        gens = gens or [None] * len(targets)
        for i, stage in enumerate(self.stages):
            # 1. assign and sample this stage's boxes
            samples = [
                self._sample(i, p, t, g) for p, t, g in zip(proposals, targets, gens, strict=True)
            ]
            # 2. box head and its losses
            rois = rois_with_batch_index([s.boxes for s in samples])  # (R, 5)
            logits, deltas = self.box_heads[i](self.box_pool(feats, rois))  # (R, K), (R, 4)
            labels = torch.cat([s.labels for s in samples])  # (R,)
            target_deltas = torch.cat(
                [self._box_targets(i, s, t) for s, t in zip(samples, targets, strict=True)]
            )
            self.cls_states[i].update(labels)  # e.g. Seesaw's class counts, before the loss
            stage_losses = self.cls_loss(logits, labels, self.cls_states[i])
            reg = box_regression_loss(deltas, target_deltas, labels, c)["loss_bbox"]
            stage_losses["loss_bbox"] = reg * self.settings.box_loss_weight
            # 3. interleaved: regress the sampled boxes, re-assign, re-sample for the mask head
            with torch.no_grad():
                per_image = deltas.detach().split([len(s.boxes) for s in samples])
                proposals = [
                    self.coders[i].decode(s.boxes, d, size)[~s.is_gt]
                    for s, d, size in zip(samples, per_image, image_sizes, strict=True)
                ]
                samples = [
                    self._sample(i, p, t, g)
                    for p, t, g in zip(proposals, targets, gens, strict=True)
                ]
            # 4. mask head on the new positives, with information flow from earlier stages
            pos_boxes = [s.boxes[: s.num_pos] for s in samples]
            pos_labels = torch.cat([s.labels[: s.num_pos] for s in samples])
            mask_rois = rois_with_batch_index(pos_boxes)
            mask_feats = self.mask_pool(feats, mask_rois)  # (P, C, 14, 14)
            res = None
            for j in range(i):
                res = self.mask_heads[j].features(mask_feats, res)
            mask_logits, _ = self.mask_heads[i](
                mask_feats, res, labels=pos_labels, rois=mask_rois, feats=feats
            )  # (P, 28, 28)
            size = mask_logits.shape[-1]
            mask_t = torch.cat(
                [
                    mask_targets(t.masks, s.boxes[: s.num_pos], s.matches[: s.num_pos], size)
                    for s, t in zip(samples, targets, strict=True)
                ]
            )
            stage_losses.update(mask_loss(mask_logits, mask_t, global_mean=True))
            for k, v in stage_losses.items():
                losses[f"s{i}.{k}"] = v * stage.loss_weight
            # 5. the regressed boxes are the next stage's proposals (already in `proposals`)
        return losses

    @torch.no_grad()
    def _sample(
        self, stage: int, boxes: Tensor, t: Targets, g: torch.Generator | None = None
    ) -> Samples:
        """Ground truth is added as proposals, then 512 RoIs are sampled (positives first)."""
        candidates = torch.cat([t.boxes, boxes])
        is_gt = torch.zeros(len(candidates), dtype=torch.bool, device=boxes.device)
        is_gt[: len(t.boxes)] = True
        a = self.matchers[stage](candidates, t.boxes)
        pos, neg = self.sampler(a.labels, g)
        keep = torch.cat([pos, neg])
        labels = torch.full((len(keep),), self.num_classes, dtype=torch.long, device=boxes.device)
        if len(pos):
            labels[: len(pos)] = t.labels[a.matches[pos]]
        return Samples(candidates[keep], labels, a.matches[keep], is_gt[keep], len(pos))

    def _box_targets(self, stage: int, s: Samples, t: Targets) -> Tensor:
        out = s.boxes.new_zeros(s.boxes.shape)
        if s.num_pos:
            out[: s.num_pos] = self.coders[stage].encode(
                s.boxes[: s.num_pos], t.boxes[s.matches[: s.num_pos]]
            )
        return out

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def features(self, images: list[Tensor]) -> tuple[list[Tensor], list[tuple[int, int]]]:
        """FPN levels P2..P6 of a batch, and each image's size before padding."""
        batch = batch_images(images, self.pixel_mean, self.pixel_std)
        return self.neck(self.backbone(batch.tensor)), batch.image_sizes

    @torch.no_grad()
    def score_boxes(
        self, feats: list[Tensor], boxes: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Run the box stages on proposals: per image, class probabilities (R_i, C) from the
        stages' averaged logits, and the last stage's boxes (R_i, 4)."""
        counts = [len(b) for b in boxes]
        logits_sum: Tensor | None = None
        for i in range(len(self.stages)):
            logits, deltas = self.box_heads[i](self.box_pool(feats, rois_with_batch_index(boxes)))
            logits_sum = logits if logits_sum is None else logits_sum + logits
            boxes = [
                self.coders[i].decode(b, d, size)
                for b, d, size in zip(boxes, deltas.split(counts), image_sizes, strict=True)
            ]  # the last stage's boxes are the final ones
        probs = self.cls_loss.probabilities(logits_sum / len(self.stages))  # (R, C)
        return list(probs.split(counts)), boxes

    def nms(self, boxes: Tensor, probs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = self.settings
        if not len(boxes):
            return empty_like_dets(boxes.device)
        return multiclass_nms(boxes, probs, s.score_thr, s.nms_iou, s.max_per_img)

    @torch.no_grad()
    def detect(
        self, feats: list[Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[InstanceDetections]:
        probs, boxes = self.score_boxes(feats, proposals, image_sizes)
        out = []
        for b, p, size in zip(boxes, probs, image_sizes, strict=True):
            det_boxes, det_scores, det_labels = self.nms(b, p)
            out.append(InstanceDetections(det_boxes, det_scores, det_labels, None, size))
        masks = self.masks(feats, [d.boxes for d in out], torch.cat([d.labels for d in out]))
        for d, m in zip(out, masks.split([len(d) for d in out]), strict=True):
            d.masks = m
        return out

    def masks(self, feats: list[Tensor], boxes: list[Tensor], labels: Tensor) -> Tensor:
        """Mean over stages of sigmoid mask logits of each detection's class, (N, 28, 28).

        Class-wise NMS on class-agnostic boxes often keeps one box for several classes; mask
        features depend on the box only, so they are computed once per distinct box.
        """
        rois = rois_with_batch_index(boxes)  # (N, 5)
        uniq, inv = torch.unique(rois, dim=0, return_inverse=True)  # (U, 5), (N,)
        out: Tensor | None = None
        step = self.settings.mask_chunk
        for start in range(0, len(uniq), step):
            u = uniq[start : start + step]
            sel = torch.nonzero((inv >= start) & (inv < start + step)).flatten()
            local, lab = inv[sel] - start, labels[sel]
            mask_feats = self.mask_pool(feats, u)  # (U_c, C, 14, 14)
            res, acc = None, None
            for head in self.mask_heads:
                logits, res = head(mask_feats, res, labels=lab, index=local, rois=u, feats=feats)
                acc = logits.sigmoid() if acc is None else acc + logits.sigmoid()
            if out is None:
                out = acc.new_zeros((len(rois), *acc.shape[1:]))
            out[sel] = acc / len(self.mask_heads)
        if out is None:  # no detections: the heads' output size from an empty forward
            empty = self.mask_pool(feats, rois)
            logits, _ = self.mask_heads[0](empty, None, labels=labels)
            out = logits.new_zeros((0, *logits.shape[1:]))
        return out
