"""Our protocols against the official packages run in the test: pycocotools COCOeval and
lvis==0.5.3 LVISEval, on detections with many equal scores (ties) and, for COCO, crowd regions."""

from __future__ import annotations

import copy
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tailseg.config import SynthConfig
from tailseg.data import AnnotationFile
from tailseg.data.synth import generate
from tailseg.evaluation import STAT_KEYS, evaluate, make_protocol
from tests.eval_data import make_detections


@pytest.fixture(scope="module")
def synth_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = SynthConfig(
        num_classes=15,
        train_images=30,
        val_images=25,
        seed=5,
        min_side=64,
        max_side=128,
        max_objects=8,
    )
    return generate(tmp_path_factory.mktemp("evalsynth"), cfg, progress=False).val_json


def coco_stats(gt_path: Path, results: list[dict], iou_type: str) -> list[float]:
    with redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_coco_protocol_equals_pycocotools(coco43_json: Path, iou_type: str) -> None:
    gt = AnnotationFile.load(coco43_json)
    results = make_detections(gt, seed=1, with_bbox=iou_type == "bbox")
    expected = coco_stats(coco43_json, results, iou_type)
    out = evaluate(gt, results, make_protocol("coco", iou_type))
    got = [out.stats[k] for k in STAT_KEYS["coco"]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert sum(a.iscrowd for a in gt.annotations) == 4  # crowd handling is exercised


def test_coco_protocol_respects_max_dets(coco43_json: Path) -> None:
    gt = AnnotationFile.load(coco43_json)
    results = make_detections(gt, seed=2, junk_per_image=30)
    base = evaluate(gt, results, make_protocol("coco", "segm")).stats
    tight = evaluate(gt, results, make_protocol("coco", "segm", max_dets_per_image=2)).stats
    assert tight["AR100"] < base["AR100"] and tight["AR1"] == base["AR1"]


def lvis_stats(gt_path: Path, results: list[dict], iou_type: str, cap: int) -> dict:
    from lvis import LVIS, LVISEval, LVISResults

    with redirect_stdout(io.StringIO()):
        gt = LVIS(str(gt_path))
        ev = LVISEval(gt, LVISResults(gt, copy.deepcopy(results), max_dets=cap), iou_type)
        ev.run()
    r = ev.get_results()  # AR keys are labelled with params.max_dets (300), whatever the cap
    return {
        k: float(r[k if not k.startswith("AR") else f"{k}@{ev.params.max_dets}"])
        for k in STAT_KEYS["lvis"]
    }


@pytest.mark.parametrize(("iou_type", "cap"), [("segm", 300), ("segm", 12), ("bbox", 300)])
def test_lvis_protocol_equals_lvis_api(
    synth_val: Path, iou_type: str, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 predates NumPy 1.24
    gt = AnnotationFile.load(synth_val)
    results = make_detections(gt, seed=3, junk_per_image=20, with_bbox=iou_type == "bbox")
    scores = [r["score"] for r in results]
    assert len(scores) - len(set(scores)) > 100  # many ties
    expected = lvis_stats(synth_val, results, iou_type, cap)
    out = evaluate(gt, results, make_protocol("lvis", iou_type, max_dets_per_image=cap))
    for k, v in expected.items():
        assert out.stats[k] == pytest.approx(v, abs=1e-12), k
    if cap == 12:
        assert out.num_after_caps == 12 * len(gt.images)


def test_columns_and_results_list_agree(synth_val: Path) -> None:
    from tailseg.evaluation import from_results

    gt = AnnotationFile.load(synth_val)
    results = make_detections(gt, seed=4)
    cols = from_results(results, gt, need_masks=True)
    p = make_protocol("challenge2021")
    assert evaluate(gt, cols, p).stats == evaluate(gt, results, p).stats
