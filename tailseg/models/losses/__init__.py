"""Losses: pure functions of tensors returning dicts of named losses."""

from tailseg.models.losses.classification import ClassificationLoss, SoftmaxCrossEntropy
from tailseg.models.losses.detection import box_regression_loss, mask_loss, rpn_loss, smooth_l1

__all__ = [
    "ClassificationLoss",
    "SoftmaxCrossEntropy",
    "box_regression_loss",
    "mask_loss",
    "rpn_loss",
    "smooth_l1",
]
