"""Target assignment (under no_grad): anchors, matcher, sampler, box coder, mask targets."""

from tailseg.models.assign.anchors import AnchorGenerator, inside_image
from tailseg.models.assign.box_coder import BoxCoder
from tailseg.models.assign.mask_targets import mask_targets, mask_targets_at
from tailseg.models.assign.matcher import Assignment, Matcher
from tailseg.models.assign.sampler import Sampler

__all__ = [
    "AnchorGenerator",
    "Assignment",
    "BoxCoder",
    "Matcher",
    "Sampler",
    "inside_image",
    "mask_targets",
    "mask_targets_at",
]
