"""`tailseg predict`: results json, overlays, evaluation, unreadable images skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from tailseg.cli.main import main
from tailseg.config import SynthConfig, load_config
from tailseg.data import AnnotationFile, DataError
from tailseg.data.synth import generate
from tailseg.engine import checkpoint
from tailseg.evaluation import from_results
from tailseg.models.build import build_model
from tailseg.models.detectors.htc import HybridTaskCascade
from tests.test_htc import REFINE_MS, TINY

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
    args = predict_args(ckpt, out, "--images", str(images), "--no-progress")
    tta = ["infer.tta=true", "infer.tta_scales=[[128,96],[160,120]]"]  # TTA at the test scale
    assert main([*args[:2], *tta, *args[2:]]) == 0
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


PLAIN_HTC = ["model.roi.mask_heads=[htc,htc,htc]", "model.roi.mask_scoring=false"]
NO_MS = ["model.roi.mask_scoring=false"]


@pytest.mark.parametrize(
    ("saved", "wanted", "key"),
    [
        (PLAIN_HTC, [], "none for model.roi.mask_scoring, model.roi.mask_heads[2]"),
        (NO_MS, [], "none for model.roi.mask_scoring ("),
        ([], PLAIN_HTC, "extra model.roi.mask_scoring, model.roi.mask_heads[2]"),
    ],
)
def test_a_checkpoint_without_the_configs_heads_names_the_key(
    setup, tmp_path: Path, capsys, saved: list[str], wanted: list[str], key: str
) -> None:
    val, _ = setup
    ckpt = tmp_path / "other.pt"
    model = build_model(load_config(str(TINY), [*OVERRIDES, *saved]).model)
    checkpoint.save(ckpt, {"model": model.state_dict()})
    args = predict_args(ckpt, tmp_path / "o", "--dataset", str(val))
    assert main([*args[:2], *wanted, *args[2:]]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt}: weights do not fit" in err and key in err


def test_mask_scoring_results_carry_mask_and_box_scores(setup, tmp_path: Path) -> None:
    val, _ = setup
    ckpt = tmp_path / "ms.pt"
    torch.manual_seed(0)
    model = build_model(load_config(str(TINY), [*OVERRIDES, *REFINE_MS]).model)
    with torch.no_grad():  # a fixed positive IoU prediction: mask score = 0.6 × box score
        model.mask_iou_head.iou.weight.zero_()
        model.mask_iou_head.iou.bias.fill_(0.6)
    checkpoint.save(ckpt, {"model": model.state_dict()})
    out = tmp_path / "pred"
    args = predict_args(ckpt, out, "--dataset", str(val), "--no-progress")
    assert main([*args[:2], *REFINE_MS, *args[2:]]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results and all("bbox_score" in r for r in results)
    score = np.array([r["score"] for r in results])
    box = np.array([r["bbox_score"] for r in results])
    np.testing.assert_allclose(score, 0.6 * box, atol=2e-6)
    gt = AnnotationFile.load(val)
    by_box = from_results(results, gt, need_masks=False, box_scores=True)
    by_mask = from_results(results, gt, need_masks=True)
    assert np.array_equal(by_box.scores, box) and np.array_equal(by_mask.scores, score)
    del results[1]["bbox_score"]
    with pytest.raises(DataError, match=r"results\[1\]\.bbox_score: missing field"):
        from_results(results, gt, need_masks=False, box_scores=True)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, setup: tuple[Path, Path]) -> Path:
    """Six images of mixed sizes and orientations (padded to 96×128 or 128×96 at the test scale)."""
    cfg = SynthConfig(
        num_classes=6, train_images=1, val_images=6, seed=2, min_side=48, max_side=96, max_objects=4
    )
    return generate(tmp_path_factory.mktemp("mixed"), cfg, progress=False).val_json


def _by_image(results: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in results:
        out.setdefault(r["image_id"], []).append(r)
    return out


def test_batched_prediction_agrees_with_one_by_one_on_mixed_sizes(
    setup, mixed, tmp_path: Path, monkeypatch
) -> None:
    _, ckpt = setup
    gt = AnnotationFile.load(mixed)
    assert {im.height > im.width for im in gt.images} == {True, False}  # portrait and landscape
    forward = HybridTaskCascade.forward
    batches: list[int] = []
    monkeypatch.setattr(
        HybridTaskCascade,
        "forward",
        lambda model, images, *a, **k: (
            batches.append(len(images)) or forward(model, images, *a, **k)
        ),
    )
    runs = []
    for bs in ("1", "3"):
        out = tmp_path / f"b{bs}"
        args = predict_args(ckpt, out, "--dataset", str(mixed), "--no-progress", "--batch-size", bs)
        assert main(args) == 0
        runs.append(
            (
                _by_image(json.loads((out / "results.json").read_text())),
                json.loads((out / "metrics.json").read_text()),
            )
        )
    assert batches == [1] * 6 + [3, 3]  # batch 3 still batches: 3 portrait, then 3 landscape
    (one, m1), (three, m3) = runs
    assert set(one) == set(three) == {im.id for im in gt.images}
    matched = total = 0
    for image_id, dets in one.items():
        other = three[image_id]
        assert len(dets) == len(other), image_id  # max_per_img detections either way
        top = sorted(dets, key=lambda r: -r["score"])[:10]
        iou = mask_utils.iou([r["bbox"] for r in top], [r["bbox"] for r in other], [0] * len(other))
        same = np.array([[a["category_id"] == b["category_id"] for b in other] for a in top])
        matched += int(((iou > 0.95) & same).any(axis=1).sum())
        total += len(top)
    assert matched >= 0.95 * total, f"{matched}/{total} top detections found again"
    for key in ("AP", "AP50", "AR"):
        assert abs(m1[key] - m3[key]) <= 0.02, key


REPORT_TTA = ((1600, 1000), (1600, 1400), (1800, 1200), (1800, 1600))


def test_tta_flag_runs_the_configs_tta_the_reports_in_lvis_configs(monkeypatch, tmp_path) -> None:
    from tailseg.cli import predict as predict_cmd

    seen, real = {}, predict_cmd.load_run_config

    def capture(name: str, overrides: list[str]):
        seen["cfg"] = real(name, overrides)
        raise SystemExit(0)

    monkeypatch.setattr(predict_cmd, "load_run_config", capture)
    args = ["predict", "htc_swin_l_fpn_lvis", "--checkpoint", "x.pt", "--images", "x", "--out", "o"]
    with pytest.raises(SystemExit):
        main(args)
    assert not seen["cfg"].infer.tta  # off unless asked for
    with pytest.raises(SystemExit):
        main([*args, "--tta"])
    infer = seen["cfg"].infer
    assert infer.tta and infer.tta_flip and infer.tta_scales == REPORT_TTA


@pytest.mark.parametrize(
    "name", ["lvis_v1", "htc_r50_fpn_lvis", *(f"htc_swin_{s}_fpn_lvis" for s in "tsbl")]
)
def test_lvis_configs_test_at_the_reference_scale(name: str) -> None:
    """CBNetV2's HTC configs test at img_scale (1600, 1400): short side 1400, long ≤ 1600 (also
    the per-epoch evaluation that picks the best epoch); TTA at the report's 4 scales × flip."""
    infer = load_config(str(TINY.parent / f"{name}.yaml")).infer
    assert (infer.short_side, infer.max_size) == (1400, 1600)
    assert infer.tta_scales == REPORT_TTA and infer.tta_flip and not infer.tta
