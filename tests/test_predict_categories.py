"""Category ids and names travel from the training set, in the checkpoint, to predictions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from tailseg.cli.main import main
from tailseg.config import SynthConfig, load_config
from tailseg.data import AnnotationFile
from tailseg.data.synth import generate, synth_categories
from tailseg.engine import checkpoint
from tailseg.engine.trainer import train
from tailseg.models.build import build_model
from tailseg.viz import overlay
from tests.test_htc import TINY
from tests.test_predict import OVERRIDES, predict_args

TRAIN = [  # one step on two tiny synthetic images: only the checkpoint's contents matter here
    "model.num_classes=5",
    "data.synth.num_classes=5",
    "data.synth.train_images=2",
    "data.synth.val_images=1",
    "data.synth.min_side=48",
    "data.synth.max_side=64",
    "data.synth.max_objects=2",
    "data.augment.scale_range=[48,64]",
    "data.augment.mosaic_scale_range=[48,64]",
    "data.augment.max_size=96",
    "infer.short_side=64",
    "infer.max_size=96",
    "infer.max_per_img=10",
    "train.epochs=1",
    "train.max_iters_per_epoch=1",
    "train.warmup_iters=0",
    "eval.challenge=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    train(load_config(str(TINY), TRAIN), run_dir, progress=False)
    return run_dir


def test_checkpoints_store_the_training_categories_in_label_order(run: Path) -> None:
    gt = AnnotationFile.load(run / "data" / "train.json")
    expected = [{"id": c.id, "name": c.name} for c in gt.categories]
    assert [c["id"] for c in expected] != [1, 2, 3, 4, 5]  # real LVIS ids, not label + 1
    for name in ("best.pt", "last.pt"):
        assert torch.load(run / name, weights_only=True)["categories"] == expected, name


def test_predict_images_reports_the_checkpoint_ids_and_draws_names(
    run: Path, tmp_path: Path, monkeypatch
) -> None:
    drawn: list[list[str]] = []
    monkeypatch.setattr(overlay, "draw_instances", lambda ax, *a, **k: drawn.append(list(a[4])))
    images = run / "data" / "images" / "val"
    out = tmp_path / "pred"
    args = ["predict", "tiny", *TRAIN, "--checkpoint", str(run / "best.pt"), "--out", str(out)]
    assert main([*args, "--images", str(images), "--draw", "--no-progress"]) == 0
    gt = AnnotationFile.load(run / "data" / "train.json")
    results = json.loads((out / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= set(gt.category_ids)
    assert drawn == [[c.name for c in gt.categories]]


@pytest.fixture(scope="module")
def synth6(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(val json, its images, untrained weights): 6 categories, the tiny config's synth seed."""
    root = tmp_path_factory.mktemp("synth6")
    cfg = SynthConfig(num_classes=6, train_images=1, val_images=1, min_side=48, max_side=64)
    data = generate(root, cfg, progress=False)
    torch.manual_seed(0)
    weights = build_model(load_config(str(TINY), OVERRIDES).model).state_dict()
    return data.val_json, data.image_root / "val", weights


def test_dataset_with_other_categories_is_refused_naming_it(synth6, tmp_path, capsys) -> None:
    val, _, weights = synth6
    gt = AnnotationFile.load(val)
    ckpt = tmp_path / "best.pt"
    others = [{"id": c.id + (k == 3), "name": c.name} for k, c in enumerate(gt.categories)]
    checkpoint.save(ckpt, {"model": weights, "categories": others})
    assert main(predict_args(ckpt, tmp_path / "o", "--dataset", str(val))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {val}: categories: not those {ckpt} was trained on")
    assert f"label 3 is category id {gt.category_ids[3]} here" in err


def test_older_checkpoint_takes_the_configs_categories_or_warns(
    synth6, tmp_path: Path, caplog
) -> None:
    val, images, weights = synth6
    ckpt = tmp_path / "old.pt"
    checkpoint.save(ckpt, {"model": weights})  # written before checkpoints had categories
    ids = {}
    for name, extra in (("numbers", []), ("synth", ["data.synth.num_classes=6"])):
        args = predict_args(ckpt, tmp_path / name, "--images", str(images), "--no-progress")
        with caplog.at_level(logging.WARNING):
            assert main([*args[:2], *extra, *args[2:]]) == 0
        results = json.loads((tmp_path / name / "results.json").read_text())
        ids[name] = {r["category_id"] for r in results}
    # tiny's data.synth has 40 categories, not the model's 6: numbers, and a warning saying so
    assert "no categories stored" in caplog.text and "ids 1..6" in caplog.text
    assert ids["numbers"] <= set(range(1, 7))
    assert "using those of the config's data.synth" in caplog.text
    assert ids["synth"] and ids["synth"] <= set(AnnotationFile.load(val).category_ids)


def test_synth_categories_are_those_generate_writes(tmp_path: Path) -> None:
    cfg = SynthConfig(num_classes=7, train_images=1, val_images=1, seed=3, min_side=32)
    gt = AnnotationFile.load(generate(tmp_path, cfg, progress=False).val_json)
    assert synth_categories(cfg) == [(c.id, c.name) for c in gt.categories]
