"""Typed detections of one image, and pasting their low-resolution masks into the image.

`masks` are per-detection probabilities (N, M, M) inside each box (28×28, or 112×112 from
RefineMask); `mask_scores`, when Mask Scoring predicted them, rank the masks (segm and boundary
results) while `scores` rank the boxes. `to_rles`
resamples each one at the pixel centres of its box (bilinear), thresholds it and encodes the
full-image masks to COCO RLE a chunk at a time, so memory stays bounded for 1,000 detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class InstanceDetections:
    """boxes (N, 4) xyxy abs px · scores (N,) · labels (N,) 0..C-1 · masks (N, M, M) probs ·
    image_size (H, W) of the frame the boxes are in · mask_scores (N,) or None (= scores)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor
    image_size: tuple[int, int]
    mask_scores: Tensor | None = None

    @property
    def segm_scores(self) -> Tensor:
        """The scores of the masks: Mask Scoring's where predicted, else the box scores."""
        return self.scores if self.mask_scores is None else self.mask_scores

    def top(self, min_score: float, k: int) -> Tensor:
        """Indices of at most k detections whose mask score is >= min_score, best first."""
        order = torch.argsort(self.segm_scores, descending=True, stable=True)
        return order[self.segm_scores[order] >= min_score][:k]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def rescale(self, image_size: tuple[int, int]) -> InstanceDetections:
        """The same detections in a frame of size (H, W) (e.g. back to the original image)."""
        sy = image_size[0] / self.image_size[0]
        sx = image_size[1] / self.image_size[1]
        scale = self.boxes.new_tensor([sx, sy, sx, sy])
        return replace(self, boxes=self.boxes * scale, image_size=image_size)

    def bitmaps(self, index: Tensor, threshold: float = 0.5) -> Tensor:
        """Full-image masks (K, H, W) bool of the detections at `index` (for drawing)."""
        h, w = self.image_size
        idx = index.tolist()
        canvas = np.zeros((len(idx), h, w), dtype=np.uint8)
        masks, boxes = self.masks.detach().float().cpu(), self.boxes.detach().float().cpu()
        for j, i in enumerate(idx):
            paste_one(canvas[j], masks[i], boxes[i], threshold)
        return torch.from_numpy(canvas).bool()

    def to_rles(self, threshold: float = 0.5, chunk: int = 64) -> list[dict]:
        """Full-image masks as compressed RLE (`counts` str), in detection order."""
        h, w = self.image_size
        rles: list[dict] = []
        masks = self.masks.detach().float().cpu()
        boxes = self.boxes.detach().float().cpu()
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            canvas = np.zeros((h, w, stop - start), dtype=np.uint8, order="F")
            for j, i in enumerate(range(start, stop)):
                paste_one(canvas[:, :, j], masks[i], boxes[i], threshold)
            for r in mask_utils.encode(canvas):
                r["counts"] = r["counts"].decode("ascii")
                rles.append(r)
        return rles


def paste_one(canvas: np.ndarray, mask: Tensor, box: Tensor, threshold: float) -> None:
    """Write mask (M, M) probabilities, stretched over box (x1, y1, x2, y2), into canvas (H, W)."""
    h, w = canvas.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = max(math.floor(x1), 0), max(math.floor(y1), 0)
    xe, ye = min(math.ceil(x2), w), min(math.ceil(y2), h)
    if xe <= x0 or ye <= y0 or x2 <= x1 or y2 <= y1:
        return
    # pixel centres of the covered region in the mask's [-1, 1] coordinates
    gx = (torch.arange(x0, xe, dtype=torch.float32) + 0.5 - x1) / (x2 - x1) * 2 - 1
    gy = (torch.arange(y0, ye, dtype=torch.float32) + 0.5 - y1) / (y2 - y1) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]  # (1, h, w, 2)
    probs = F.grid_sample(mask[None, None], grid, align_corners=False)[0, 0]  # (h, w)
    canvas[y0:ye, x0:xe] = (probs >= threshold).numpy()
