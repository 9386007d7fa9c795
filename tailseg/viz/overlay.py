"""Instances drawn on an image: translucent masks, box outlines, class names (and scores)."""

from __future__ import annotations

import colorsys

import numpy as np
from matplotlib.axes import Axes
from torch import Tensor


def instance_color(k: int) -> np.ndarray:
    """A distinct, saturated RGB colour (0–1) for label k."""
    return np.array(colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.85, 1.0))


def blend_masks(image: Tensor, masks: Tensor, labels: Tensor, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) float 0–1: the image with each mask tinted by its label's colour."""
    out = image.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
    for m, lab in zip(masks.numpy(), labels.tolist(), strict=True):
        out[m] = out[m] * (1 - alpha) + instance_color(lab) * alpha
    return out


def draw_instances(
    ax: Axes,
    image: Tensor,
    boxes: Tensor,
    masks: Tensor,
    labels: Tensor,
    names: list[str],
    scores: Tensor | None = None,
    fontsize: float = 6,
) -> None:
    """image uint8 (3, H, W), boxes (M, 4) xyxy, masks (M, H, W) bool, labels (M,) → on `ax`."""
    ax.imshow(blend_masks(image, masks, labels))
    for i, (box, lab) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
        x0, y0, x1, y1 = box
        color = instance_color(lab)
        ax.add_patch(_rect(x0, y0, x1 - x0, y1 - y0, color))
        text = names[lab] if scores is None else f"{names[lab]} {float(scores[i]):.2f}"
        ax.text(
            x0,
            y0,
            text,
            fontsize=fontsize,
            color="white",
            va="bottom",
            bbox={"facecolor": color, "alpha": 0.7, "pad": 0.5, "linewidth": 0},
        )
    ax.set_axis_off()


def _rect(x: float, y: float, w: float, h: float, color: np.ndarray):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=0.8)
