"""Evaluation: COCO, LVIS and LVIS Challenge 2021 (AP‡) protocols, bbox / segm / boundary IoU."""

from tailseg.evaluation.detections import Detections, from_results, load_results
from tailseg.evaluation.evaluator import EvalResult, evaluate
from tailseg.evaluation.protocol import STAT_KEYS, Protocol, make_protocol

__all__ = [
    "STAT_KEYS",
    "Detections",
    "EvalResult",
    "Protocol",
    "evaluate",
    "from_results",
    "load_results",
    "make_protocol",
]
