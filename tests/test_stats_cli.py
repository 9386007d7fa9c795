"""`tailseg data stats|synth`, `tailseg demo` and the CLI's error handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailseg.cli.main import main
from tailseg.data import AnnotationFile
from tailseg.data.stats import dataset_stats, lvis_frequency

PNG = b"\x89PNG\r\n\x1a\n"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "data", "model", "demo"):
        assert f"    {command} " in out


def test_stats_on_coco43(coco43_json, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plot, out_json = tmp_path / "tail.png", tmp_path / "stats.json"
    assert (
        main(["data", "stats", str(coco43_json), "--plot", str(plot), "--json", str(out_json)]) == 0
    )
    text = capsys.readouterr().out
    assert "images 43   instances 374 (crowd 4)   categories 53 present of 80" in text
    s = json.loads(out_json.read_text())
    assert (s["images"], s["instances"], s["categories"]) == (43, 374, 53)
    assert set(s["frequency"]) == {"r", "c", "f"}
    for g in "rcf":
        assert set(s["frequency"][g]) >= {"classes", "images", "instances"}
    assert sum(s["frequency"][g]["instances"] for g in "rcf") == 374
    assert plot.read_bytes().startswith(PNG) and plot.stat().st_size > 10_000


def test_frequency_derived_with_lvis_thresholds(coco43_json) -> None:
    assert [lvis_frequency(n) for n in (0, 1, 10, 11, 100, 101)] == list("rrrccf")
    s = dataset_stats(AnnotationFile.load(coco43_json))
    assert s["frequency_source"].startswith("derived")
    person = next(c for c in s["per_category"] if c["name"] == "person")
    assert person["instances"] == 109 and person["frequency"] == lvis_frequency(person["images"])


def test_bad_json_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["data", "stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: malformed JSON") and "Traceback" not in err


def test_bad_override_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "tiny", "train.epochz=3", "--out", str(tmp_path)]) == 2
    assert "error: command line: train.epochz: unknown key" in capsys.readouterr().err
    # the demo's config is optional: a first argument with `=` is an override of tiny's
    assert main(["demo", "train.epochz=3", "--out", str(tmp_path)]) == 2
    assert "error: command line: train.epochz: unknown key" in capsys.readouterr().err


def test_synth_command_writes_a_loadable_benchmark(tmp_path: Path, capsys) -> None:
    args = [
        "data",
        "synth",
        "--out",
        str(tmp_path),
        "--num-classes",
        "6",
        "--train-images",
        "8",
        "--val-images",
        "4",
        "--min-side",
        "48",
        "--max-side",
        "64",
    ]
    assert main(args) == 0
    assert "images 8" in capsys.readouterr().out
    assert len(AnnotationFile.load(tmp_path / "val.json").images) == 4
    assert main([*args[:4], "--num-classes", "2"]) == 2
    assert "command line: num_classes: must be >= 3" in capsys.readouterr().err
