"""`tailseg eval` end to end: printed table, metrics.json keys, plots, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailseg.cli.main import main
from tailseg.data import AnnotationFile
from tailseg.evaluation import STAT_KEYS
from tests.eval_data import make_detections


@pytest.fixture
def files(coco43_json: Path, tmp_path: Path) -> tuple[Path, Path]:
    results = make_detections(AnnotationFile.load(coco43_json), seed=9, with_bbox=True)
    res = tmp_path / "res.json"
    res.write_text(json.dumps(results))
    return coco43_json, res


@pytest.mark.parametrize(
    ("protocol", "iou"), [("coco", "segm"), ("lvis", "bbox"), ("challenge2021", None)]
)
def test_eval_writes_metrics_and_plots(
    files, tmp_path: Path, protocol: str, iou: str | None, capsys
) -> None:
    gt, res = files
    out, plots = tmp_path / "metrics.json", tmp_path / "plots"
    args = [
        "eval",
        "--gt",
        str(gt),
        "--results",
        str(res),
        "--protocol",
        protocol,
        "--out",
        str(out),
        "--plots",
        str(plots),
    ] + (["--iou-type", iou] if iou else [])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"protocol {protocol}" in printed
    m = json.loads(out.read_text())
    assert set(STAT_KEYS[protocol]) <= set(m)
    assert {"per_class", "classes_at_cap"} <= set(m)
    assert {"id", "name", "frequency", "AP", "detections"} <= set(m["per_class"][0])
    assert (plots / "ap_by_group.png").exists() and (plots / "pr_curves.png").exists()


def test_eval_caps_from_the_command_line(files, tmp_path: Path) -> None:
    gt, res = files
    out = tmp_path / "m.json"
    base = ["eval", "--gt", str(gt), "--results", str(res), "--out", str(out)]
    assert main([*base, "--max-dets-per-image", "none", "--max-dets-per-class", "5"]) == 0
    m = json.loads(out.read_text())
    assert m["max_dets_per_image"] is None and m["max_dets_per_class"] == 5
    assert m["classes_at_cap"] and all(c["detections"] <= 5 for c in m["per_class"])


def test_eval_bad_results_exit_2(files, tmp_path: Path, capsys) -> None:
    gt, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 1.0}]))
    assert main(["eval", "--gt", str(gt), "--results", str(bad)]) == 2
    assert "results[0].image_id: image 1 is not in" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--gt",
                str(gt),
                "--results",
                str(bad),
                "--protocol",
                "challenge2021",
                "--iou-type",
                "segm",
            ]
        )
        == 2
    )
