"""Hybrid Task Cascade (Chen et al., 2019) without the semantic branch.

Training, per stage i (IoU threshold 0.5 / 0.6 / 0.7, loss weight 1 / 0.5 / 0.25):
  1. assign the current boxes (ground truth added as proposals) and sample 512 RoIs, 25% fg;
  2. box head on them → classification and box regression losses (one box per RoI, or one per
     class with `class_agnostic_boxes=False`: the label's deltas);
  3. interleaved execution: regress the sampled boxes with this stage's head, drop the ground
     truth, re-assign and re-sample them, and train this stage's mask head on the new positives;
  4. mask information flow: stage i's mask head adds a 1×1 conv of the features of stages
     0..i-1's mask heads (run again on the same RoIs) to its input; the last stage's head may
     be RefineMask (masks up to 112×112, boundary-aware loss, a semantic branch on P2), and
     Mask Scoring may learn the IoU of the last stage's masks;
  5. the regressed boxes are the next stage's proposals.
Box-head losses (classification and regression) are scaled by `box_loss_weight`.
With a CBNetV2 composite backbone, training also runs the RPN losses and the cascade on the
assistant's pyramid (same FPN and heads, the lead's proposals, as the reference's
`two_stage.py`, which computes and drops the assistant's own), with its own sampling streams
and without counting its labels in Seesaw's class counts again; those losses are named
`assist.*` and weighted by `assist_loss_weight`.
Inference: the three stages' class logits are averaged, boxes come from the last stage, masks
from all mask heads (with information flow) on the final boxes — each computed only for its
detection's class — either averaged at the last head's size (`mask_merge="mean"`) or the last
head's alone ("last"); with Mask Scoring a detection's mask score is its box score × the
predicted IoU of its mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tailseg.models.assign import BoxCoder, Matcher, Sampler, mask_targets_at
from tailseg.models.backbones.cbnet import CompositeBackbone
from tailseg.models.detectors.postprocess import empty_like_dets, multiclass_nms
from tailseg.models.detectors.preprocess import IMAGENET_MEAN, IMAGENET_STD, batch_images
from tailseg.models.detectors.rpn import RPN
from tailseg.models.heads import (
    BoxHead,
    MaskIoUHead,
    MultiLevelRoIAlign,
    class_deltas,
    rois_with_batch_index,
)
from tailseg.models.heads.refine_mask_head import SEMANTIC_STRIDE
from tailseg.models.losses import (
    ClassificationLoss,
    area_ratio,
    box_regression_loss,
    mask_iou_loss,
    mask_iou_targets,
    refinemask_loss,
    semantic_loss,
    semantic_targets,
)
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
    mask_chunk: int = 32  # detections whose masks are computed at once at inference (bounds memory)
    mask_merge: Literal["mean", "last"] = "mean"  # every head's mask, or the last head's
    mask_iou_weight: float = 0.5


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
        mask_iou_head: MaskIoUHead | None = None,
        pixel_mean: tuple[float, float, float] = IMAGENET_MEAN,
        pixel_std: tuple[float, float, float] = IMAGENET_STD,
        assist_loss_weight: float = 0.5,
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
        self.mask_iou_head = mask_iou_head
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
        self.assist_loss_weight = assist_loss_weight
        # Channels-last weights: oneDNN's convolutions run on that layout without reordering
        # (on 2 CPU cores: backbone 1.3×, RefineMask 1.6× faster, less transient memory); cuDNN
        # runs both. Only the memory layout changes, not the math.
        self.to(memory_format=torch.channels_last)

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
        n_roi = len(self.box_pool.strides)  # RoIAlign reads P2..P5
        if not self.training:
            feats = self.pyramid(batch.tensor)  # P2..P6, (B, C, H_l, W_l)
            proposals, _ = self.rpn(feats, batch.image_sizes)
            return self.detect(feats[:n_roi], proposals, batch.image_sizes)
        if targets is None or len(targets) != len(images):
            raise ValueError("training needs one Targets per image")
        targets = [t.select(~t.iscrowd) for t in targets]  # crowd regions are not objects
        feats, assist = self.training_pyramids(batch.tensor)
        gens = None if seeds is None else [_generator(s, stream=0) for s in seeds]
        gt_boxes = [t.boxes for t in targets]
        proposals, rpn_losses = self.rpn(feats, batch.image_sizes, gt_boxes, generators=gens)
        losses = {f"rpn.{k}": v for k, v in rpn_losses.items()}
        losses.update(
            self.cascade_losses(feats[:n_roi], proposals, targets, batch.image_sizes, gens)
        )
        if assist is not None:  # CBNetV2: the assistant's pyramid, the lead's proposals
            gens = None if seeds is None else [_generator(s, stream=1) for s in seeds]
            rpn_losses = self.rpn.losses_only(assist, batch.image_sizes, gt_boxes, gens)
            more = {f"rpn.{k}": v for k, v in rpn_losses.items()}
            more.update(
                self.cascade_losses(
                    assist[:n_roi], proposals, targets, batch.image_sizes, gens, count=False
                )
            )
            losses.update({f"assist.{k}": v * self.assist_loss_weight for k, v in more.items()})
        return losses

    def training_pyramids(self, x: Tensor) -> tuple[list[Tensor], list[Tensor] | None]:
        """The lead's (or the only) pyramid, and a composite backbone's assistant's (else
        None), both through the one FPN."""
        if not isinstance(self.backbone, CompositeBackbone):
            return self.pyramid(x), None
        assist, lead = self.backbone.forward_pair(x)
        return _contiguous(self.neck(lead)), _contiguous(self.neck(assist))

    # ------------------------------------------------------------------ training
    def cascade_losses(
        self,
        feats: list[Tensor],
        proposals: list[Tensor],
        targets: list[Targets],
        image_sizes: list[tuple[int, int]],
        gens: list[torch.Generator] | None = None,
        count: bool = True,
    ) -> dict[str, Tensor]:
        """The cascade's losses on `proposals`; `count`: add the sampled labels to the
        classification loss's state (Seesaw's class counts) — once per image per step."""
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
            logits, deltas = self.box_heads[i](self.box_pool(feats, rois))  # (R, K), (R, 4[·C])
            labels = torch.cat([s.labels for s in samples])  # (R,)
            target_deltas = torch.cat(
                [self._box_targets(i, s, t) for s, t in zip(samples, targets, strict=True)]
            )
            if count:
                self.cls_states[i].update(labels)  # e.g. Seesaw's class counts, before the loss
            stage_losses = self.cls_loss(logits, labels, self.cls_states[i])
            stage_losses.update(
                box_regression_loss(class_deltas(deltas, labels), target_deltas, labels, c)
            )
            stage_losses = {k: v * self.settings.box_loss_weight for k, v in stage_losses.items()}
            # 3. interleaved: regress the sampled boxes, re-assign, re-sample for the mask head
            with torch.no_grad():
                chosen = deltas.detach()
                if chosen.shape[1] != 4:  # per class: the label's, the best class's for negatives
                    which = torch.where(labels < c, labels, logits[:, :c].argmax(1))
                    chosen = class_deltas(chosen, which)
                per_image = chosen.split([len(s.boxes) for s in samples])
                proposals = [
                    self.coders[i].decode(s.boxes, d, size)[~s.is_gt]
                    for s, d, size in zip(samples, per_image, image_sizes, strict=True)
                ]
                samples = [
                    self._sample(i, p, t, g)
                    for p, t, g in zip(proposals, targets, gens, strict=True)
                ]
            # 4. mask head on the new positives, with information flow from earlier stages
            head = self.mask_heads[i]
            pos_labels = torch.cat([s.labels[: s.num_pos] for s in samples])
            mask_rois = rois_with_batch_index([s.boxes[: s.num_pos] for s in samples])
            mask_feats = self.mask_pool(feats, mask_rois)  # (P, C, 14, 14)
            res = None
            for j in range(i):
                res = self.mask_heads[j].features(mask_feats, res)
            context = head.prepare(feats)  # RefineMask's semantic branch; None for HTC's head
            mask_logits, _ = head(mask_feats, res, pos_labels, mask_rois, context)
            mask_t = self._mask_targets(samples, targets, head.sizes)
            stage_losses.update(  # one (P, S, S) per size of the head, coarse to fine
                refinemask_loss(
                    mask_logits, mask_t, head.stage_weights, head.boundary_stages, global_mean=True
                )
            )
            if context is not None:  # the semantic map covers the padded batch at stride 4
                padded = tuple(n * SEMANTIC_STRIDE for n in context.logits.shape[-2:])
                sem_t = semantic_targets([t.masks for t in targets], padded, SEMANTIC_STRIDE)
                stage_losses.update(semantic_loss(context.logits[:, 0], sem_t, global_mean=True))
            if self.mask_iou_head is not None and i == len(self.stages) - 1:
                probs = head.refined(mask_logits).sigmoid()  # (P, S, S) as at inference
                iou_pred = self.mask_iou_head(mask_feats, probs, pos_labels)  # (P,)
                ratio = torch.cat(
                    [
                        area_ratio(t.masks, s.matches[: s.num_pos], s.boxes[: s.num_pos])
                        for s, t in zip(samples, targets, strict=True)
                    ]
                )
                iou_t = mask_iou_targets(probs.detach(), mask_t[-1], ratio)
                w = self.settings.mask_iou_weight
                stage_losses.update(mask_iou_loss(iou_pred, iou_t, w, global_mean=True))
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

    def _mask_targets(
        self, samples: list[Samples], targets: list[Targets], sizes: tuple[int, ...]
    ) -> list[Tensor]:
        """Per size S, the (P, S, S) targets of every image's positives, in order."""
        per_image = [
            mask_targets_at(t.masks, s.boxes[: s.num_pos], s.matches[: s.num_pos], sizes)
            for s, t in zip(samples, targets, strict=True)
        ]
        return [torch.cat(per_size) for per_size in zip(*per_image, strict=True)]

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
        return self.pyramid(batch.tensor), batch.image_sizes

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """Normalised padded images (B, 3, H, W) → P2..P6, NCHW-contiguous: RoIAlign's CPU
        kernel reads NCHW, so the channels-last maps are converted once here, not per chunk."""
        return _contiguous(self.neck(self.backbone(x)))

    @torch.no_grad()
    def score_boxes(
        self, feats: list[Tensor], boxes: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Run the box stages on proposals: per image, class probabilities (R_i, C) from the
        stages' averaged logits, and the last stage's boxes (R_i, 4) — or, one box per class,
        (R_i, C, 4). Between stages a per-class head moves each box by the deltas of the
        stage's best class (as mmdetection's cascade refines)."""
        counts = [len(b) for b in boxes]
        c = self.num_classes
        n = len(self.stages)
        logits_sum: Tensor | None = None
        for i in range(n):
            logits, deltas = self.box_heads[i](self.box_pool(feats, rois_with_batch_index(boxes)))
            logits_sum = logits if logits_sum is None else logits_sum + logits
            if i == n - 1 and deltas.shape[1] != 4:  # the final boxes: one per class
                boxes = [
                    self.coders[i]
                    .decode(b.repeat_interleave(c, 0), d.reshape(-1, 4), size)
                    .view(-1, c, 4)
                    for b, d, size in zip(boxes, deltas.split(counts), image_sizes, strict=True)
                ]  # (R_i, C, 4)
                break
            if deltas.shape[1] != 4:  # per class: the stage's best class's box
                deltas = class_deltas(deltas, logits[:, :c].argmax(1))  # (R, 4)
            boxes = [
                self.coders[i].decode(b, d, size)
                for b, d, size in zip(boxes, deltas.split(counts), image_sizes, strict=True)
            ]  # the last stage's boxes are the final ones
        probs = self.cls_loss.probabilities(logits_sum / n)  # (R, C)
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
        out = [self.nms(b, p) for b, p in zip(boxes, probs, strict=True)]  # (boxes, scores, labels)
        masks, ious = self.masks(feats, [b for b, _, _ in out], torch.cat([x for _, _, x in out]))
        counts = [len(b) for b, _, _ in out]
        ious = [None] * len(out) if ious is None else ious.split(counts)
        return [
            detections(b, sc, lab, m, iou, size)
            for (b, sc, lab), m, iou, size in zip(
                out, masks.split(counts), ious, image_sizes, strict=True
            )
        ]

    def masks(
        self, feats: list[Tensor], boxes: list[Tensor], labels: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Mask probabilities (N, S, S) of each detection's class, S the last head's size, and
        with Mask Scoring the predicted IoUs (N,) of the last head's masks (else None).

        Detections are processed `mask_chunk` at a time (memory is bounded by the chunk), in
        the order of their boxes: class-wise NMS on class-agnostic boxes often keeps one box for
        several classes, and mask features depend on the box only, so within a chunk they are
        computed once per distinct box. Image-level inputs (RefineMask's semantic branch) are
        computed once per batch.
        """
        rois = rois_with_batch_index(boxes)  # (N, 5)
        _, inv = torch.unique(rois, dim=0, return_inverse=True)  # (N,) distinct-box index
        size = self.mask_heads[-1].sizes[-1]
        out = feats[0].new_zeros((len(rois), size, size))
        ious = None if self.mask_iou_head is None else feats[0].new_zeros(len(rois))
        if not len(rois):
            return out, ious
        contexts = [head.prepare(feats) for head in self.mask_heads]
        order = torch.argsort(inv, stable=True)  # detections of one box next to each other
        for start in range(0, len(rois), self.settings.mask_chunk):
            sel = order[start : start + self.settings.mask_chunk]  # (K,) detections
            first, local = torch.unique(inv[sel], return_inverse=True)  # distinct boxes here
            u = rois[sel[torch.searchsorted(inv[sel], first)]]  # (U_c, 5), one row per box
            lab = labels[sel]
            mask_feats = self.mask_pool(feats, u)  # (U_c, C, 14, 14)
            res, probs = None, []
            for head, ctx in zip(self.mask_heads, contexts, strict=True):
                logits, res = head(mask_feats, res, lab, u, ctx, index=local)
                probs.append(head.refined(logits).sigmoid())  # (K, S_i, S_i)
            if self.settings.mask_merge == "last":
                out[sel] = probs[-1]
            else:
                out[sel] = torch.stack([resize_masks(p, size) for p in probs]).mean(0)
            if ious is not None:
                ious[sel] = self.mask_iou_head(mask_feats[local], probs[-1], lab)
        return out, ious


def resize_masks(probs: Tensor, size: int) -> Tensor:
    """Box-relative masks (K, S, S) → (K, size, size), bilinear on pixel centres."""
    if probs.shape[-1] == size:
        return probs
    out = F.interpolate(probs[:, None], size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0]


def detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    masks: Tensor,
    ious: Tensor | None,
    image_size: tuple[int, int],
) -> InstanceDetections:
    """Detections with their mask scores: box score × predicted mask IoU (clamped to [0, 1])
    with Mask Scoring, else the box score."""
    mask_scores = None if ious is None else scores * ious.clamp(0.0, 1.0)
    return InstanceDetections(boxes, scores, labels, masks, image_size, mask_scores)


def _contiguous(levels: list[Tensor]) -> list[Tensor]:
    return [p.contiguous() for p in levels]


def _generator(seed: int, stream: int) -> torch.Generator:
    """The sampling generator of an image with `seed`: stream 0 is the (lead's) detector's,
    stream 1 a CBNet assistant's, independent of it (SplitMix64 of the seed)."""
    x = int(seed) & 0x7FFF_FFFF_FFFF_FFFF
    if stream:
        x = (x + stream * 0x9E37_79B9_7F4A_7C15) & 0xFFFF_FFFF_FFFF_FFFF
        x = ((x ^ (x >> 30)) * 0xBF58_476D_1CE4_E5B9) & 0xFFFF_FFFF_FFFF_FFFF
        x = ((x ^ (x >> 27)) * 0x94D0_49BB_1331_11EB) & 0xFFFF_FFFF_FFFF_FFFF
        x = (x ^ (x >> 31)) & 0x7FFF_FFFF_FFFF_FFFF
    return torch.Generator().manual_seed(x)
