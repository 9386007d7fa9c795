"""The 14 reference configurations of tests/data/eval_fixtures, reproduced to 1e-12.

Reference numbers: lvis==0.5.3 (mask/box AP), lvis-api branch lvis_challenge_2021 at 04e89fd
(Boundary AP, fixed AP, AP‡ via mode="challenge2021"), cross-checked with faster-coco-eval 1.8.0
(see eval_fixtures/README.md).
"""

from __future__ import annotations

import gzip
import json
from functools import cache

import pycocotools.mask as mask_utils
import pytest

from tailseg.data import AnnotationFile
from tailseg.evaluation import evaluate, make_protocol
from tests.conftest import TEST_DATA, data_path


def _reference() -> list[dict]:
    path = TEST_DATA / "eval_fixtures" / "reference.json"
    return json.loads(path.read_text())["results"] if path.exists() else []


@cache
def _gt(name: str) -> AnnotationFile:
    return AnnotationFile.load(data_path("eval_fixtures", name), keep_degenerate=True)


@cache
def _dets(name: str) -> str:
    with gzip.open(data_path("eval_fixtures", name), "rt") as f:
        return f.read()


@pytest.mark.parametrize("ref", _reference(), ids=lambda r: r["id"])
def test_reference_numbers(ref: dict) -> None:
    results = json.loads(_dets(ref["dt"]))
    if ref["dt_bbox"].startswith("tight box"):  # box AP with pycocotools' toBbox added
        for r in results:
            r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
    if ref["id"].endswith(".apdd"):
        protocol = make_protocol("challenge2021")
    else:
        protocol = make_protocol(
            "lvis",
            ref["iou_type"],
            max_dets_per_image=ref["max_dets_per_image"],
            max_dets_per_class=ref["max_dets_per_class"],
        )
    out = evaluate(_gt(ref["gt"]), results, protocol)
    assert out.num_after_caps == ref["dets_evaluated"]
    for key, value in ref["metrics"].items():
        assert out.stats[key] == pytest.approx(value, abs=1e-12), key


def test_fixture_files_were_found() -> None:
    assert len(_reference()) == 14
