"""Losses: pure functions of tensors returning dicts of named losses."""

from tailseg.models.losses.classification import ClassificationLoss, SoftmaxCrossEntropy
from tailseg.models.losses.detection import box_regression_loss, mask_loss, rpn_loss, smooth_l1
from tailseg.models.losses.seesaw import SeesawCounts, SeesawLoss, seesaw_loss

__all__ = [
    "ClassificationLoss",
    "SeesawCounts",
    "SeesawLoss",
    "SoftmaxCrossEntropy",
    "box_regression_loss",
    "mask_loss",
    "rpn_loss",
    "seesaw_loss",
    "smooth_l1",
]
