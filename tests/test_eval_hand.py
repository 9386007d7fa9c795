"""Hand-computed evaluation cases: one image, a few boxes-as-masks, known IoUs and AP."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tailseg.data import AnnotationFile, DataError
from tailseg.evaluation import evaluate, make_protocol
from tests.eval_data import rle_json

H = W = 40


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def gt_file(neg: list[int] = (), not_exhaustive: list[int] = ()) -> AnnotationFile:
    """One image; class 1 has one instance, the 10×10 square at (0, 0)."""
    return AnnotationFile.from_dict(
        {
            "images": [
                {
                    "id": 1,
                    "file_name": "x.jpg",
                    "height": H,
                    "width": W,
                    "neg_category_ids": list(neg),
                    "not_exhaustive_category_ids": list(not_exhaustive),
                }
            ],
            "categories": [{"id": c, "name": f"c{c}", "frequency": "f"} for c in (1, 2, 3)],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 1,
                    "area": 100,
                    "bbox": [0, 0, 10, 10],
                    "segmentation": rle_json(rect(0, 0, 10, 10)),
                }
            ],
        }
    )


def det(mask: np.ndarray, score: float, category: int = 1, image: int = 1) -> dict:
    return {
        "image_id": image,
        "category_id": category,
        "score": score,
        "segmentation": rle_json(mask),
    }


# Detection a, the top 10×6 of the square, has IoU 60/100 = 0.6 with it; b is the square itself
# (IoU 1). a scores higher.
A = det(rect(0, 0, 10, 6), 0.9)
B = det(rect(0, 0, 10, 10), 0.8)


def test_duplicate_and_threshold_by_hand() -> None:
    # thresholds 0.50, 0.55, 0.60: a matches (0.6 >= t), b is a duplicate → precision 1 at
    # recall 1 → AP_t = 1. thresholds 0.65 … 0.95 (7): a is a FP, b a TP → precision [0, 0.5],
    # made monotone → 0.5 at every recall point → AP_t = 0.5. AP = (3·1 + 7·0.5) / 10 = 0.65.
    s = evaluate(gt_file(), [A, B], make_protocol("lvis")).stats
    assert s["AP"] == pytest.approx(0.65, abs=1e-12)
    assert s["AP50"] == pytest.approx(1.0) and s["AP75"] == pytest.approx(0.5)
    assert s["AR"] == pytest.approx(1.0)  # the instance is found at every threshold
    assert s["APs"] == pytest.approx(0.65) and s["APm"] == -1 and s["APl"] == -1  # area 100
    assert s["APf"] == pytest.approx(0.65) and s["APr"] == -1  # no rare class has GT


def test_per_image_cap_keeps_the_best_scores() -> None:
    # with one detection per image only a (0.9) survives: TP at 0.5–0.6, nothing at 0.65+.
    s = evaluate(gt_file(), [B | {"score": 0.8}, A], make_protocol("lvis", max_dets_per_image=1))
    assert s.stats["AP"] == pytest.approx(0.3, abs=1e-12)
    assert s.num_after_caps == 1


def test_federated_rules_by_hand() -> None:
    far = rect(30, 30, 40, 40)  # overlaps nothing
    base = evaluate(gt_file(), [A, B], make_protocol("lvis")).stats["AP"]
    # class 2 is neither annotated nor negative on the image: its detection is not evaluated
    unverified = evaluate(gt_file(), [A, B, det(far, 0.95, 2)], make_protocol("lvis"))
    assert unverified.stats["AP"] == base and unverified.num_evaluated == 2
    # a high-scoring unmatched detection of class 1 is a FP (lowers AP) ...
    fp = evaluate(gt_file(), [A, B, det(far, 0.95)], make_protocol("lvis")).stats["AP"]
    assert fp < base
    # ... unless class 1 is not exhaustively annotated on the image: then every unmatched
    # detection of it is ignored (the far one, and a or b wherever they do not match) → AP 1
    ne = evaluate(gt_file(not_exhaustive=[1]), [A, B, det(far, 0.95)], make_protocol("lvis"))
    assert ne.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    # a detection of a negative class is evaluated; class 2 has no GT, so it has no AP
    neg = evaluate(gt_file(neg=[2]), [A, B, det(far, 0.95, 2)], make_protocol("lvis"))
    assert neg.num_evaluated == 3 and neg.stats["AP"] == base
    # the COCO protocol has no federated filter: every detection is evaluated
    assert evaluate(gt_file(), [A, B, det(far, 0.95, 2)], make_protocol("coco")).num_evaluated == 3


def test_per_class_cap_and_classes_at_cap() -> None:
    out = evaluate(gt_file(), [A, B], make_protocol("lvis", None, None, max_dets_per_class=1))
    assert out.classes_at_cap == [1] and out.num_after_caps == 1
    assert out.per_class[0]["detections"] == 1 and out.per_class[0]["AP"] == pytest.approx(0.3)


def test_boundary_is_at_most_mask_ap() -> None:
    dets = [det(rect(0, 0, 10, 10), 0.9), det(rect(1, 1, 11, 11), 0.8, image=1)]
    mask = evaluate(gt_file(), dets, make_protocol("lvis", "segm")).stats["AP"]
    bnd = evaluate(gt_file(), dets, make_protocol("lvis", "boundary")).stats["AP"]
    assert bnd == pytest.approx(mask) == pytest.approx(1.0)  # the exact square is first
    shifted = [det(rect(1, 1, 11, 11), 0.9)]  # mask IoU 81/119, boundary IoU lower
    m = evaluate(gt_file(), shifted, make_protocol("lvis", "segm")).stats["AP"]
    b = evaluate(gt_file(), shifted, make_protocol("lvis", "boundary")).stats["AP"]
    assert b < m


def test_empty_results_warn_and_give_zero(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tailseg.evaluation"):
        out = evaluate(gt_file(), [], make_protocol("challenge2021"))
    assert "no detections" in caplog.text
    assert out.stats["AP"] == 0.0 and out.stats["AR"] == 0.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"image_id": 7}, r"results\[1\]\.image_id: image 7 is not in"),
        ({"category_id": 9}, r"results\[1\]\.category_id: category 9 is not in"),
        ({"score": float("nan")}, r"results\[1\]\.score: nan is not a finite number >= 0"),
        ({"score": -0.5}, r"results\[1\]\.score: -0\.5 is not a finite number"),
        ({"score": "high"}, r"results\[1\]\.score: expected a number"),
        (
            {"segmentation": rle_json(np.zeros((5, 5)))},
            r"results\[1\]\.segmentation\.size: \[5, 5\] differs from the image size \[40, 40\]",
        ),
        ({"segmentation": None}, r"results\[1\]\.segmentation: missing field"),
    ],
)
def test_bad_results_are_named(bad: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        evaluate(gt_file(), [A, B | bad], make_protocol("lvis"))


def test_bad_protocol_arguments() -> None:
    with pytest.raises(ValueError, match=r"challenge2021 .* is boundary IoU"):
        make_protocol("challenge2021", "segm")
    with pytest.raises(ValueError, match="max_dets_per_image: must be a positive integer"):
        make_protocol("lvis", max_dets_per_image=0)
    with pytest.raises(ValueError, match="protocol: 'voc'"):
        make_protocol("voc")
