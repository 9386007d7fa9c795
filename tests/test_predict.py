"""`tailseg predict`: results json, overlays, evaluation, unreadable images skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tailseg.cli.main import main
from tailseg.config import SynthConfig, load_config
from tailseg.data import AnnotationFile
from tailseg.data.synth import generate
from tailseg.engine import checkpoint
from tailseg.evaluation import from_results
from tailseg.models.build import build_model
from tests.test_htc import TINY

OVERRIDES = [
    "model.num_classes=6",
    "infer.short_side=96",
    "infer.max_size=128",
    "infer.max_per_img=20",
]


def predict_args(ckpt: Path, out: Path, *rest: str) -> list[str]:
    """`tailseg predict tiny` with the test overrides, a checkpoint and an output folder."""
    return ["predict", "tiny", *OVERRIDES, "--checkpoint", str(ckpt), "--out", str(out), *rest]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("predict")
    cfg = SynthConfig(
        num_classes=6, train_images=3, val_images=3, seed=1, min_side=64, max_side=96, max_objects=4
    )
    data = generate(root / "data", cfg, progress=False)
    ckpt = root / "best.pt"
    torch.manual_seed(0)
    model = build_model(load_config(str(TINY), OVERRIDES).model)  # the CLI's model exactly
    checkpoint.save(ckpt, {"model": model.state_dict()})
    return data.val_json, ckpt


def test_predict_dataset_writes_results_overlays_and_metrics(setup, tmp_path: Path, capsys) -> None:
    val, ckpt = setup
    out = tmp_path / "pred"
    args = predict_args(
        ckpt, out, "--dataset", str(val), "--draw", "--score-threshold", "0", "--no-progress"
    )
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    gt = AnnotationFile.load(val)
    dets = from_results(results, gt, need_masks=True)  # valid against the ground truth
    assert len(dets) == 3 * 20
    assert len(list((out / "overlays").glob("*.png"))) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "lvis" and "APr" in metrics
    assert "protocol lvis" in capsys.readouterr().out


def test_predict_folder_skips_unreadable_images_and_keeps_the_rest(setup, tmp_path: Path) -> None:
    val, ckpt = setup
    images = tmp_path / "imgs"
    images.mkdir()
    for i, src in enumerate(sorted((val.parent / "images" / "val").glob("*.jpg"))[:2]):
        (images / f"{i}.jpg").write_bytes(src.read_bytes())
    (images / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "pred"
    args = predict_args(ckpt, out, "--images", str(images), "--no-progress", "--tta")
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} == {1, 2}  # broken.jpg sorts last (id 3)
    assert "broken.jpg: cannot read image" in (out / "skipped.txt").read_text()
    assert len(json.loads((out / "images.json").read_text())) == 3


def test_checkpoint_that_does_not_fit_is_named(setup, tmp_path: Path, capsys) -> None:
    val, _ = setup
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, bad)
    args = predict_args(bad, tmp_path / "o", "--dataset", str(val))
    assert main(args) == 2
    assert f"{bad}: weights do not fit" in capsys.readouterr().err


def test_batched_prediction_equals_one_by_one(setup, tmp_path: Path) -> None:
    val, ckpt = setup
    src = sorted((val.parent / "images" / "val").glob("*.jpg"))[0]
    images = tmp_path / "same"
    images.mkdir()
    for i in range(3):  # equal sizes: batching pads nothing, so results must not change
        (images / f"{i}.jpg").write_bytes(src.read_bytes())
    outs = []
    for bs in ("1", "3"):
        out = tmp_path / f"b{bs}"
        args = predict_args(ckpt, out, "--images", str(images), "--no-progress", "--batch-size", bs)
        assert main(args) == 0
        outs.append(json.loads((out / "results.json").read_text()))
    one, three = outs
    assert [r["image_id"] for r in one] == [r["image_id"] for r in three]
    for a, b in zip(one, three, strict=True):
        assert a["category_id"] == b["category_id"] and abs(a["score"] - b["score"]) < 1e-4
