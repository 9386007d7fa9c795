"""The in-process API (predictions as arrays/tensors) and properties on real annotations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailseg.data import AnnotationFile, DataError
from tailseg.evaluation import Detections, evaluate, make_protocol
from tests.eval_data import make_detections


def gt_as_results(gt: AnnotationFile) -> list[dict]:
    out = []
    for a in gt.annotations:
        rle = gt.rle(a)
        counts = rle["counts"]
        out.append(
            {
                "image_id": a.image_id,
                "category_id": a.category_id,
                "score": 1.0,
                "segmentation": {
                    "size": rle["size"],
                    "counts": counts.decode() if isinstance(counts, bytes) else counts,
                },
                "bbox": list(a.bbox),
            }
        )
    return out


@pytest.mark.parametrize("protocol", ["lvis", "challenge2021"])
def test_ground_truth_as_detections_scores_one_on_real_lvis(lvis_val100_json, protocol) -> None:
    # SOURCES.md: on lvis_val_100, GT-as-detections must give AP 1.0
    gt = AnnotationFile.load(lvis_val100_json, keep_degenerate=True)
    out = evaluate(gt, gt_as_results(gt), make_protocol(protocol))
    assert out.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert out.stats["AR"] == pytest.approx(1.0)


def test_predictions_from_tensors_equal_results_json(coco43_json) -> None:
    gt = AnnotationFile.load(coco43_json, keep_degenerate=True)
    results = make_detections(gt, seed=7)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    predictions = []
    for iid, rs in by_image.items():
        im = gt.image_by_id[iid]
        masks = np.stack([gt_mask(r, im.height, im.width) for r in rs])
        predictions.append(
            {
                "image_id": iid,
                "labels": torch.tensor([gt.label_of[r["category_id"]] for r in rs]),
                "scores": torch.tensor([r["score"] for r in rs], dtype=torch.float64),
                "masks": torch.from_numpy(masks),
            }
        )
    # the same detections in the same order (grouped by image, as the predictions are): equal
    # scores then break ties identically, so every statistic must be equal
    p = make_protocol("lvis")
    a = evaluate(gt, Detections.from_predictions(gt, predictions), p).stats
    order = [r for rs in by_image.values() for r in rs]
    b = evaluate(gt, order, p).stats
    assert a == b


def gt_mask(r: dict, h: int, w: int) -> np.ndarray:
    import pycocotools.mask as mask_utils

    return mask_utils.decode(r["segmentation"]).astype(bool).reshape(h, w)


def test_predictions_are_checked(coco43_json) -> None:
    gt = AnnotationFile.load(coco43_json)
    im = gt.images[0]
    good = {
        "image_id": im.id,
        "labels": np.array([0]),
        "scores": np.array([0.5]),
        "masks": np.zeros((1, im.height, im.width), bool),
    }
    assert len(Detections.from_predictions(gt, [good])) == 1
    with pytest.raises(DataError, match=r"predictions\[0\]\.labels: outside 0\.\.79"):
        Detections.from_predictions(gt, [good | {"labels": np.array([80])}])
    with pytest.raises(DataError, match=r"predictions\[0\]\.masks: shape \(1, 2, 2\)"):
        Detections.from_predictions(gt, [good | {"masks": np.zeros((1, 2, 2), bool)}])
    with pytest.raises(DataError, match=r"predictions\[0\]\.image_id: image 5 is not in"):
        Detections.from_predictions(gt, [good | {"image_id": 5}])
