"""`tailseg eval` end to end: printed table, metrics.json keys, plots, bad input."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import pytest

from tailseg.cli.main import main
from tailseg.data import AnnotationFile
from tailseg.evaluation import STAT_KEYS
from tests.eval_data import make_detections
from tests.test_bad_input import GOOD


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


# --------------------------------------------------------------------------- bad input, tiny files
SEGM = {"size": [8, 10], "counts": "`2"}  # an empty 8x10 mask
RESULT = {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": SEGM, "bbox": [1, 1, 5, 5]}


def tiny_eval(tmp_path: Path, result: dict, *extra: str, gt: dict | None = None) -> list[str]:
    """`tailseg eval` arguments for the tiny GT of test_bad_input, a good result and `result`."""
    gt_path, res = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(GOOD if gt is None else gt))
    res.write_text(json.dumps([RESULT, result]))  # NaN is written as NaN, as Python's json does
    return ["eval", "--gt", str(gt_path), "--results", str(res), *extra]


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({"score": float("nan")}, (), r"results\[1\]\.score: nan is not a finite number >= 0"),
        ({"score": float("inf")}, (), r"results\[1\]\.score: inf is not a finite number"),
        ({"score": True}, (), r"results\[1\]\.score: expected a number, got True"),
        ({"bbox": [1, 1, -5, 5]}, ("--iou-type", "bbox"), r"results\[1\]\.bbox: negative width"),
        ({"bbox": [1, 1, True, 5]}, ("--iou-type", "bbox"), r"results\[1\]\.bbox: expected \[x, y"),
        ({"bbox": [1, 1, 5, float("nan")]}, ("--iou-type", "bbox"), r"results\[1\]\.bbox: not"),
        (
            {"segmentation": {"size": [8, 10], "counts": [70]}},
            (),
            r"results\[1\]\.segmentation\.counts: run lengths sum to 70, not h\*w=80",
        ),
        (
            {"segmentation": {"size": [8, 10], "counts": "0"}},
            (),
            r"results\[1\]\.segmentation\.counts: run lengths sum to 0, not h\*w=80",
        ),
        (
            {"segmentation": {"size": [8, 10], "counts": "bé"}},
            (),
            r"results\[1\]\.segmentation\.counts: not ASCII",
        ),
        (
            {"segmentation": {"size": 8, "counts": "`2"}},
            (),
            r"results\[1\]\.segmentation\.size: expected \[height, width\], got 8",
        ),
        (
            {"segmentation": [[1, 1, 6, "x", 6, 6]]},
            (),
            r"results\[1\]\.segmentation\[0\]: polygon must be a flat list of numbers",
        ),
    ],
)
def test_eval_bad_result_names_entry_and_field(
    tmp_path: Path, capsys, change: dict, extra: tuple[str, ...], message: str
) -> None:
    assert main(tiny_eval(tmp_path, {**RESULT, **change}, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {tmp_path / 'res.json'}: ")
    assert re.search(message, err), err


@pytest.mark.parametrize("counts", ["\x01\x02garbage", "ünï"])
def test_eval_bad_ground_truth_rle_is_one_line(tmp_path: Path, capsys, counts: str) -> None:
    gt = copy.deepcopy(GOOD)
    gt["annotations"][0]["segmentation"] = {"size": [8, 10], "counts": counts}
    assert main(tiny_eval(tmp_path, RESULT, gt=gt)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"error: {tmp_path / 'gt.json'}: annotations[0] (id 5).segmentation.counts:"
    )
    assert len(err.splitlines()) == 1


def test_lvis_protocol_without_frequency_warns_and_prints_na(
    tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    gt = copy.deepcopy(GOOD)
    for c in gt["categories"]:
        del c["frequency"]
    with caplog.at_level(logging.WARNING, logger="tailseg.evaluation"):
        assert main(tiny_eval(tmp_path, RESULT, "--iou-type", "bbox", gt=gt)) == 0
    assert (
        "no category has a `frequency` field" in caplog.text and "APr, APc and APf" in caplog.text
    )
    head, values = capsys.readouterr().out.splitlines()[2:4]
    shown = dict(zip(head.split(), values.split(), strict=True))
    assert shown["AP"] != "n/a" and [shown[k] for k in ("APr", "APc", "APf")] == ["n/a"] * 3
