"""The three evaluation protocols and their constants (COCO, LVIS, LVIS Challenge 2021 AP‡)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ProtocolName = Literal["coco", "lvis", "challenge2021"]
IouType = Literal["bbox", "segm", "boundary"]

# As pycocotools and lvis-api build them (linspace, so 0.75 is exactly representable here too).
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_NAMES = ("all", "small", "medium", "large")
AREA_LO = np.array([0.0, 0.0, 32.0**2, 96.0**2])
AREA_HI = np.array([1e5**2, 32.0**2, 96.0**2, 1e5**2])  # inclusive ends
COCO_MAX_DETS = (1, 10, 100)

STAT_KEYS: dict[str, tuple[str, ...]] = {
    "coco": tuple(
        ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    ),
    "lvis": tuple(
        ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR", "ARs", "ARm", "ARl"]
    ),
}
STAT_KEYS["challenge2021"] = STAT_KEYS["lvis"]


@dataclass(frozen=True)
class Protocol:
    """How detections are capped, filtered and matched.

    name: `coco` (pycocotools COCOeval: maxDets 1/10/max_dets_per_image per image *and class*,
    crowd regions), `lvis` (lvis-api: per-image cap before federated filtering) or
    `challenge2021` (AP‡: boundary IoU, top `max_dets_per_class` per class over the file, no
    per-image cap). `max_dets_per_image`/`max_dets_per_class` None means no cap.
    """

    name: ProtocolName = "lvis"
    iou_type: IouType = "segm"
    max_dets_per_image: int | None = 300
    max_dets_per_class: int | None = None
    dilation: float = 0.02

    @property
    def federated(self) -> bool:
        return self.name != "coco"

    @property
    def coco_max_dets(self) -> tuple[int, ...]:
        return (*COCO_MAX_DETS[:2], self.max_dets_per_image or COCO_MAX_DETS[2])

    @property
    def stat_keys(self) -> tuple[str, ...]:
        return STAT_KEYS[self.name]


_UNSET: object = object()


def make_protocol(
    name: str = "lvis",
    iou_type: str | None = None,
    max_dets_per_image: int | object | None = _UNSET,
    max_dets_per_class: int | object | None = _UNSET,
    dilation: float = 0.02,
) -> Protocol:
    """A protocol with its official defaults, checked.

    Defaults: coco 100 per image and class, lvis 300 per image, challenge2021 10,000 per class
    and no per-image cap. `challenge2021` is boundary IoU by definition; for "fixed" mask AP use
    `lvis` with `max_dets_per_image=None, max_dets_per_class=10000`.
    """
    if name not in STAT_KEYS:
        raise ValueError(f"protocol: {name!r} is not one of coco, lvis, challenge2021")
    default_iou = "boundary" if name == "challenge2021" else "segm"
    iou_type = iou_type or default_iou
    if iou_type not in ("bbox", "segm", "boundary"):
        raise ValueError(f"iou_type: {iou_type!r} is not one of bbox, segm, boundary")
    if name == "challenge2021" and iou_type != "boundary":
        raise ValueError(
            "iou_type: challenge2021 (AP‡) is boundary IoU; for fixed mask AP use protocol lvis "
            "with max_dets_per_image none and max_dets_per_class 10000"
        )
    defaults = {"coco": (100, None), "lvis": (300, None), "challenge2021": (None, 10000)}[name]
    per_image = defaults[0] if max_dets_per_image is _UNSET else max_dets_per_image
    per_class = defaults[1] if max_dets_per_class is _UNSET else max_dets_per_class
    for field, value in (("max_dets_per_image", per_image), ("max_dets_per_class", per_class)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{field}: must be a positive integer or none, got {value!r}")
    if name == "coco" and per_class is not None:
        raise ValueError("max_dets_per_class: the coco protocol has no per-class cap")
    if name == "coco" and per_image is None:
        raise ValueError("max_dets_per_image: the coco protocol needs a cap (default 100)")
    if not dilation > 0:
        raise ValueError(f"dilation: must be > 0, got {dilation}")
    return Protocol(name, iou_type, per_image, per_class, float(dilation))  # type: ignore[arg-type]
