"""Multi-scale + flip test-time augmentation, merged as HTC merges it.

For an image and augmentations a = (scale, flip):
  1. proposals of every augmentation, mapped back to the image (rescaled, flips undone), are
     merged by NMS (IoU 0.7) into one set of at most `test_proposals`;
  2. each augmentation scores that common set: class probabilities from its stages' averaged
     logits, and its last stage's boxes mapped back; probabilities and boxes are averaged over
     augmentations (per proposal, since the set is shared);
  3. one class-wise NMS keeps up to `max_per_img` detections;
  4. every augmentation predicts masks for the kept boxes (mapped into its frame) through the
     model's one mask path (`HybridTaskCascade.masks`: only each detection's class channel, at
     the last head's size, 28×28 or RefineMask's 112×112); flipped ones are mirrored back; the
     box-relative masks are averaged, as mmdetection's `merge_aug_masks` averages its 28×28
     box-relative masks, so memory stays at N × S × S per augmentation; with Mask Scoring the
     predicted IoUs are averaged too, and the mask score is the box score × that mean.
With one augmentation (no flip) every step reduces to plain inference, exactly.

Each augmentation's FPN features are used by the three phases (proposals, scores, masks). By
default they are computed once and held (8 frames of the report's scales: about 1.2 GB of
tensors for an 800×1333 image); `hold_features=False` (`infer.tta_hold_features`) recomputes
them in each phase instead, holding one frame at a time, for two more backbone passes per
frame. The results are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import nms

from tailseg.data.transforms.common import resize_image, scaled_size
from tailseg.models.detectors.htc import HybridTaskCascade, detections
from tailseg.structures.detections import InstanceDetections


def to_frame(boxes: Tensor, scale: tuple[float, float], flip: bool, width: int) -> Tensor:
    """Image-frame boxes → augmented frame (scale (sx, sy), then mirror in `width`)."""
    sx, sy = scale
    out = boxes * boxes.new_tensor([sx, sy, sx, sy])
    if flip:
        out = torch.stack([width - out[:, 2], out[:, 1], width - out[:, 0], out[:, 3]], dim=1)
    return out


def from_frame(boxes: Tensor, scale: tuple[float, float], flip: bool, width: int) -> Tensor:
    """Augmented-frame boxes → image frame (the inverse of `to_frame`)."""
    if flip:
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    sx, sy = scale
    return boxes / boxes.new_tensor([sx, sy, sx, sy])


@dataclass
class Frame:
    """One augmentation of the image: its resized image (flip not yet applied), FPN features
    (None when not held), its size, scale (sx, sy) and flip."""

    image: Tensor
    feats: list[Tensor] | None
    size: tuple[int, int]
    scale: tuple[float, float]
    flip: bool


class Augmented:
    """An image seen under several augmentations; boxes move between the image frame and each
    augmentation's frame (with one augmentation the image frame *is* its frame: no round trip,
    so the result equals plain inference bit for bit)."""

    def __init__(
        self,
        model: HybridTaskCascade,
        image: Tensor,
        scales: list[tuple[int, int]],
        flip: bool,
        hold_features: bool = True,
    ) -> None:
        self.model = model
        self.h, self.w = image.shape[-2:]
        self.hold = hold_features
        device = next(model.parameters()).device
        self.frames: list[Frame] = []
        for long_side, short_side in scales:
            size = scaled_size(self.h, self.w, short_side, long_side)
            img = resize_image(image, size).to(device)
            for f in (False, True) if flip else (False,):
                fr = Frame(img, None, size, (size[1] / self.w, size[0] / self.h), f)
                if self.hold:
                    fr.feats = self.features(fr)
                self.frames.append(fr)
        self.single = len(self.frames) == 1
        self.n_roi = len(model.box_pool.strides)  # RoI features come from P2..P5

    @torch.no_grad()
    def features(self, fr: Frame) -> list[Tensor]:
        """The frame's FPN levels P2..P6: held, or computed now."""
        if fr.feats is not None:
            return fr.feats
        feats, _ = self.model.features([fr.image.flip(-1) if fr.flip else fr.image])
        return feats

    def to_frame(self, boxes: Tensor, fr: Frame) -> Tensor:
        return boxes if self.single else to_frame(boxes, fr.scale, fr.flip, fr.size[1])

    def from_frame(self, boxes: Tensor, fr: Frame) -> Tensor:
        return boxes if self.single else from_frame(boxes, fr.scale, fr.flip, fr.size[1])

    @torch.no_grad()
    def proposals(self) -> Tensor:
        """Every augmentation's proposals in the image frame, merged by NMS."""
        props, scores = [], []
        for fr in self.frames:
            ((b, sc),) = self.model.rpn.propose(self.features(fr), [fr.size])
            props.append(self.from_frame(b, fr))
            scores.append(sc)
        if self.single:
            return props[0]
        merged, merged_scores = torch.cat(props), torch.cat(scores)
        s = self.model.rpn.test_settings
        return merged[nms(merged, merged_scores, s.nms_iou)[: s.max_proposals]]

    @torch.no_grad()
    def score(self, proposals: Tensor) -> tuple[Tensor, Tensor]:
        """Class probabilities (R, C) and boxes (R, 4) (or per class (R, C, 4)) averaged over
        augmentations."""
        probs_sum, boxes_sum = None, None
        for fr in self.frames:
            feats = self.features(fr)[: self.n_roi]
            (p,), (b,) = self.model.score_boxes(feats, [self.to_frame(proposals, fr)], [fr.size])
            del feats  # not held: free this frame's features before the next frame's
            b = self.from_frame(b.reshape(-1, 4), fr).view(b.shape)  # (R, 4) or (R, C, 4)
            probs_sum = p if probs_sum is None else probs_sum + p
            boxes_sum = b if boxes_sum is None else boxes_sum + b
        probs, boxes = probs_sum / len(self.frames), boxes_sum / len(self.frames)
        if not self.single:
            limit = boxes.new_tensor([self.w, self.h, self.w, self.h])
            boxes = torch.minimum(boxes.clamp(min=0), limit)
        return probs, boxes

    @torch.no_grad()
    def masks(self, boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """(N, S, S) mask probabilities in box coordinates and predicted mask IoUs (N,) (None
        without Mask Scoring), averaged over augmentations (flips mirrored back)."""
        total, total_iou = None, None
        for fr in self.frames:
            feats = self.features(fr)[: self.n_roi]
            m, iou = self.model.masks(feats, [self.to_frame(boxes, fr)], labels)
            del feats  # not held: free this frame's features before the next frame's
            m = m.flip(-1) if fr.flip else m
            total = m if total is None else total + m
            if iou is not None:
                total_iou = iou if total_iou is None else total_iou + iou
        n = len(self.frames)
        return total / n, None if total_iou is None else total_iou / n


@torch.no_grad()
def tta_detect(
    model: HybridTaskCascade,
    image: Tensor,
    scales: list[tuple[int, int]],
    flip: bool,
    hold_features: bool = True,
) -> InstanceDetections:
    """Detections of a uint8 (3, H, W) image in its own frame, over scales × {no flip, flip};
    `hold_features=False` bounds memory to one frame's features (see the module docstring)."""
    model.eval()
    aug = Augmented(model, image, scales, flip, hold_features)
    probs, boxes = aug.score(aug.proposals())
    det_boxes, det_scores, det_labels = model.nms(boxes, probs)
    masks, ious = aug.masks(det_boxes, det_labels)
    if aug.single:  # boxes are in the augmentation's frame: rescale as plain inference does
        det = detections(det_boxes, det_scores, det_labels, masks, ious, aug.frames[0].size)
        return det.rescale((aug.h, aug.w))
    return detections(det_boxes, det_scores, det_labels, masks, ious, (aug.h, aug.w))
