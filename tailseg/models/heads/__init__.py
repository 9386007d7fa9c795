"""Heads: modules returning raw tensors (their losses live in `tailseg.models.losses`)."""

from tailseg.models.heads.box_head import BoxHead, CosineLinear, class_deltas
from tailseg.models.heads.mask_head import HTCMaskHead
from tailseg.models.heads.maskiou_head import MaskIoUHead
from tailseg.models.heads.refine_mask_head import RefineMaskHead
from tailseg.models.heads.roi_pool import MultiLevelRoIAlign, rois_with_batch_index
from tailseg.models.heads.rpn_head import RPNHead

__all__ = [
    "BoxHead",
    "CosineLinear",
    "HTCMaskHead",
    "MaskIoUHead",
    "MultiLevelRoIAlign",
    "RPNHead",
    "RefineMaskHead",
    "class_deltas",
    "rois_with_batch_index",
]
