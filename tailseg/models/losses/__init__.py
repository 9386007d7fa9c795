"""Losses: pure functions of tensors returning dicts of named losses."""

from tailseg.models.losses.classification import ClassificationLoss, SoftmaxCrossEntropy
from tailseg.models.losses.detection import (
    box_regression_loss,
    global_mean_of,
    rpn_loss,
    smooth_l1,
)
from tailseg.models.losses.mask_iou import (
    area_inside,
    area_ratio,
    mask_iou_loss,
    mask_iou_targets,
)
from tailseg.models.losses.refinemask import (
    boundary_region,
    refine,
    refinemask_loss,
    semantic_loss,
    semantic_targets,
)
from tailseg.models.losses.seesaw import SeesawCounts, SeesawLoss, seesaw_loss

__all__ = [
    "ClassificationLoss",
    "SeesawCounts",
    "SeesawLoss",
    "SoftmaxCrossEntropy",
    "area_inside",
    "area_ratio",
    "boundary_region",
    "box_regression_loss",
    "global_mean_of",
    "mask_iou_loss",
    "mask_iou_targets",
    "refine",
    "refinemask_loss",
    "rpn_loss",
    "seesaw_loss",
    "semantic_loss",
    "semantic_targets",
    "smooth_l1",
]
