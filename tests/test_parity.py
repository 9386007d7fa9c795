"""mmdetection's weights in tailseg give mmdetection's outputs.

The fixtures (tests/data/parity/*.pt, made by benchmarks/parity/make_fixtures.py with
mmdetection 3.3 / mmcv 2.2 built outside this repository) hold mmdetection's own outputs for
small random-weight models on two COCO photos, with the key names and shapes of its state
dict and the seed of the weights' recipe (tests/parity_recipe.py). Here the same
mmdetection-keyed checkpoint is made without mmdetection, converted by `tailseg convert`'s
code path, loaded, and run in float64: the RPN's proposals, each cascade stage's class logits
and boxes on mmdetection's proposals, and the final detections (boxes and scores to 1e-4,
same labels, mask IoU ≥ 0.99 per detection) must equal mmdetection's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from tailseg.cli.common import resolve_config
from tailseg.config import load_config
from tailseg.convert.checkpoint import convert_checkpoint
from tailseg.convert.mmdet import class_order, convert_mmdet, settings
from tailseg.data.dataset import read_image
from tailseg.engine import checkpoint
from tailseg.models.build import build_model
from tailseg.models.detectors.preprocess import batch_images
from tailseg.models.heads import rois_with_batch_index
from tailseg.structures.detections import InstanceDetections
from tests.conftest import TEST_DATA, float64
from tests.parity_recipe import recipe_state

FIXTURES = sorted((TEST_DATA / "parity").glob("*.pt"))


def source_state(fx: dict) -> dict[str, torch.Tensor]:
    """The fixture's mmdetection-keyed state dict, float64, in mmdetection's order: the recipe,
    the mask-logit biases make_fixtures.py centred, zeros for integer buffers (BatchNorm
    counters, Swin's position index)."""
    shapes = {k: tuple(fx["shapes"][k]) for k in fx["float_keys"]}
    state = recipe_state(shapes, fx["seed"])
    state.update(fx.get("bias_overrides", {}))
    for k in fx["keys"]:
        state.setdefault(k, torch.zeros(fx["shapes"][k], dtype=torch.int64))
    return {k: state[k] for k in fx["keys"]}


def overrides(fx: dict) -> list[str]:
    """The tailseg config of the fixture's model: its architecture and mmdetection's test
    settings (the photos are used at their own size)."""
    rpn, rcnn = fx["test_cfg"]["rpn"], fx["test_cfg"]["rcnn"]
    return [
        "model.roi.classifier=linear",
        "model.roi.cls_loss=softmax",
        "model.roi.mask_heads=[htc,htc,htc]",
        "model.roi.mask_scoring=false",
        *fx["tailseg_overrides"],
        f"model.num_classes={fx['num_classes']}",
        "model.fpn_channels=32",
        "model.roi.fc_dim=64",
        "model.roi.mask_conv_dim=32",
        "model.roi.mask_num_convs=4",
        "model.rpn.anchor_scales=[8]",
        "model.rpn.anchor_ratios=[0.5,1.0,2.0]",
        f"model.rpn.test_pre_nms={rpn['nms_pre']}",
        f"model.rpn.test_proposals={rpn['max_per_img']}",
        f"model.rpn.nms_iou={rpn['nms']['iou_threshold']}",
        f"infer.score_thr={rcnn['score_thr']}",
        f"infer.nms_iou={rcnn['nms']['iou_threshold']}",
        f"infer.max_per_img={rcnn['max_per_img']}",
        f"infer.mask_threshold={rcnn['mask_thr_binary']}",
    ]


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.stem for p in FIXTURES])
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(fixture, tailseg model in float64 with the converted weights, conversion report).

    The weights are converted twice: as a user does, from an mmdetection-style checkpoint file
    (float32) through `convert_checkpoint` to a tailseg checkpoint; and exactly, from the
    recipe's float64 tensors (mmdetection ran in float64), for the comparisons. The two must
    agree to float32 rounding."""
    fx = torch.load(request.param, weights_only=True)
    exact = source_state(fx)
    folder = tmp_path_factory.mktemp(fx["name"])
    src, out = folder / "mmdet.pth", folder / "tailseg.pt"
    as_file = {k: v.float() if v.is_floating_point() else v for k, v in exact.items()}
    version = fx.get("mmdet_version", "3.3.0")
    torch.save({"state_dict": as_file, "meta": {"mmdet_version": version}}, src)
    report = convert_checkpoint(src, resolve_config("tiny"), out, overrides(fx))
    implied = [f"{k}={v}" for k, v in settings(exact, version=version).items()]
    cfg = load_config(str(resolve_config("tiny")), [*implied, *overrides(fx)])
    with float64():
        model = build_model(cfg.model, cfg.infer).eval()
        weights, _ = convert_mmdet(exact, cfg, model.state_dict(), fx["name"])
        model.load_state_dict(weights)
    saved = checkpoint.load(out)["model"]
    assert list(saved) == list(weights)
    for k, v in saved.items():
        as_saved = weights[k].float() if weights[k].is_floating_point() else weights[k]
        torch.testing.assert_close(v, as_saved.to(v.dtype), rtol=0, atol=0)  # via float32
    return fx, model, report


def photo_path(name: str) -> Path:
    return TEST_DATA / "coco_sample43" / "images" / name


def photo(name: str) -> torch.Tensor:
    return read_image(photo_path(name))


@torch.no_grad()
def test_rpn_proposals_equal_mmdetections(converted) -> None:
    fx, model, _ = converted
    for name, want in zip(fx["photos"], fx["outputs"], strict=True):
        with float64():
            batch = batch_images([photo(name)], model.pixel_mean, model.pixel_std)
            feats = model.pyramid(batch.tensor)
            logits, deltas, anchors = model.rpn.outputs(feats)
            ((boxes, scores),) = model.rpn.proposals(
                logits, deltas, anchors, batch.image_sizes, model.rpn.test_settings
            )
        assert boxes.shape == want["proposals"].shape, name
        # to 1e-4 px, not 1e-12: mmdetection's base anchors are float32 constants (cast to the
        # features' float64), tailseg's are computed in float64
        torch.testing.assert_close(boxes, want["proposals"], rtol=0, atol=1e-4)
        torch.testing.assert_close(scores, want["proposal_scores"], rtol=0, atol=1e-9)


@torch.no_grad()
def test_cascade_stages_equal_mmdetections(converted) -> None:
    """Each stage's class logits and regressed boxes, on mmdetection's proposals."""
    fx, model, _ = converted
    for name, want in zip(fx["photos"], fx["outputs"], strict=True):
        with float64():
            batch = batch_images([photo(name)], model.pixel_mean, model.pixel_std)
            feats = model.pyramid(batch.tensor)[: len(model.box_pool.strides)]
            boxes = want["proposals"]
            for i, stage in enumerate(want["stages"]):
                rois = rois_with_batch_index([boxes])
                logits, deltas = model.box_heads[i](model.box_pool(feats, rois))
                torch.testing.assert_close(logits, stage["logits"], rtol=0, atol=1e-8)
                torch.testing.assert_close(deltas, stage["deltas"], rtol=0, atol=1e-8)
                if "boxes" in stage:  # a cascade: the stage's boxes are the next's proposals
                    boxes = model.coders[i].decode(boxes, deltas, batch.image_sizes[0])
                    torch.testing.assert_close(boxes, stage["boxes"], rtol=0, atol=1e-6)


@torch.no_grad()
def test_detections_equal_mmdetections(converted) -> None:
    fx, model, _ = converted
    clamped = 0
    for name, want in zip(fx["photos"], fx["outputs"], strict=True):
        image = photo(name)
        with float64():
            (det,) = model([image])
        if fx.get("grouped_by_class"):  # mmdetection 2.x lists detections class by class
            o = torch.argsort(det.labels, stable=True)
            ms = None if det.mask_scores is None else det.mask_scores[o]
            det = InstanceDetections(
                det.boxes[o], det.scores[o], det.labels[o], det.masks[o], det.image_size, ms
            )
        assert len(det) == len(want["boxes"]) > 0, name
        torch.testing.assert_close(det.boxes, want["boxes"], rtol=0, atol=1e-4)
        assert det.labels.tolist() == want["labels"].tolist()
        if det.mask_scores is None:
            torch.testing.assert_close(det.scores, want["scores"], rtol=0, atol=1e-4)
        else:  # Mask Scoring, a deliberate difference: mmdetection replaces the detection's
            # score by box score × predicted IoU (unclamped) for boxes and masks alike; tailseg
            # keeps the box score and gives the mask score box × IoU clamped to [0, 1]
            iou = want["scores"] / det.scores
            clamped += int(((iou < 0) | (iou > 1)).sum())
            expected = det.scores * iou.clamp(0, 1)
            torch.testing.assert_close(det.segm_scores, expected, rtol=0, atol=1e-6)
        h, w = image.shape[-2:]
        ours = det.to_rles(0.5)
        theirs = [{"size": [h, w], "counts": c.encode()} for c in want["rles"]]
        assert len(ours) == len(theirs)
        ious = np.array([mask_iou(a, b) for a, b in zip(ours, theirs, strict=True)])
        assert (ious >= 0.99).all(), (name, ious.min())
    assert clamped > 0 or not fx["tailseg_overrides"].count("model.roi.mask_scoring=true")


def mask_iou(a: dict, b: dict) -> float:
    """IoU of two RLE masks; two empty masks are equal (IoU 1)."""
    if mask_utils.area(a) == 0 and mask_utils.area(b) == 0:
        return 1.0
    return float(mask_utils.iou([a], [b], [0])[0, 0])


def test_report_accounts_for_every_key(converted) -> None:
    fx, _, report = converted
    seen = [k for k, *_ in report.mapped] + [k for k, _ in report.dropped]
    assert sorted(seen) == sorted(fx["keys"])
    assert len(set(t for _, t, _ in report.mapped)) == len(report.mapped)


def test_convert_command_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The user's path: `tailseg convert mmdet` writes the checkpoint and its config, and
    `tailseg predict` runs them on a photo; class names stored in the source are checked
    against `--categories`."""
    from tailseg.cli.main import main

    fx = torch.load(TEST_DATA / "parity" / "mask_rcnn_r50.pt", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in source_state(fx).items()}
    gt = TEST_DATA / "coco_sample43" / "instances.json"  # 53 categories: take the first 8
    data = json.loads(gt.read_text())
    data["categories"] = sorted(data["categories"], key=lambda c: c["id"])[: fx["num_classes"]]
    cats = tmp_path / "cats.json"
    cats.write_text(json.dumps({"images": [], "categories": data["categories"]}))
    names = [c["name"] for c in data["categories"]]
    src, out = tmp_path / "mask_rcnn.pth", tmp_path / "converted.pt"
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": names}}}, src)
    args = ["convert", "mmdet", str(src), "--config", "tiny", "--out", str(out)]
    assert main([*args, "--categories", str(cats), *overrides(fx)]) == 0
    printed = capsys.readouterr().out
    assert "307 tensors mapped" in printed and "class_agnostic_boxes=false" in printed
    assert checkpoint.load(out)["categories"][0]["name"] == names[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(
        (TEST_DATA / "coco_sample43" / "images" / fx["photos"][0]).read_bytes()
    )
    pred = [
        "predict",
        str(out.with_suffix(".yaml")),
        "--checkpoint",
        str(out),
        "--images",
        str(photos),
    ]
    assert main([*pred, "--out", str(tmp_path / "preds"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "preds" / "results.json").read_text())
    assert len(results) > 0 and {r["category_id"] for r in results} <= {
        c["id"] for c in data["categories"]
    }
    names[0] = "not " + names[0]
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": names}}}, src)
    assert main([*args, "--categories", str(cats), *overrides(fx)]) == 2
    assert "meta.dataset_meta.classes[0]" in capsys.readouterr().err
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": names[:-1]}}}, src)
    assert main([*args, "--categories", str(cats), *overrides(fx)]) == 2
    assert "meta.dataset_meta.classes: 7 classes" in capsys.readouterr().err


@torch.no_grad()
def test_categories_listed_out_of_id_order(tmp_path: Path) -> None:
    """mmdetection numbers a json's categories in the order it lists them, tailseg by ascending
    id: with `--categories` listing them out of order, the class channels are reordered and
    every detection keeps its category (MS R-CNN: classifier, per-class boxes, mask logits,
    MaskIoU outputs)."""
    fx = torch.load(TEST_DATA / "parity" / "ms_rcnn_r50.pt", weights_only=True)
    ids_in_file = [50, 10, 70, 30, 80, 20, 60, 40]
    exact = source_state(fx)
    implied = [f"{k}={v}" for k, v in settings(exact).items()]
    cfg = load_config(str(resolve_config("tiny")), [*implied, *overrides(fx)])
    with float64():
        model = build_model(cfg.model, cfg.infer).eval()
        labels = class_order(ids_in_file)
        weights, report = convert_mmdet(exact, cfg, model.state_dict(), "ms", labels=labels)
        model.load_state_dict(weights)
        (det,) = model([photo(fx["photos"][0])])
    assert any("reordered" in n for n in report.notes)
    htc = recipe_state({"roi_head.mask_head.1.conv_res.conv.weight": (1, 1, 1, 1)}, 0)
    htc["roi_head.bbox_head.0.fc_cls.weight"] = torch.zeros(3, 2)
    assert settings(htc, version="3.3.0")["model.roi.mask_merge"] == "last"
    assert settings(htc, version="2.28.2")["model.roi.mask_merge"] == "mean"
    want = fx["outputs"][0]
    ours = [sorted(ids_in_file)[i] for i in det.labels.tolist()]
    theirs = [ids_in_file[j] for j in want["labels"].tolist()]
    assert ours == theirs and len(set(ours)) > 1
    torch.testing.assert_close(det.boxes, want["boxes"], rtol=0, atol=1e-4)
    # through the command's path: names stored in the source are checked in the json's order
    cats = [{"id": i, "name": f"class {i}"} for i in ids_in_file]
    json_path = tmp_path / "cats.json"
    json_path.write_text(json.dumps({"images": [], "categories": cats}))
    src = tmp_path / "ms.pth"
    meta = {"dataset_meta": {"classes": [c["name"] for c in cats]}}
    torch.save({"state_dict": {k: v.float() for k, v in exact.items()}, "meta": meta}, src)
    convert_checkpoint(src, resolve_config("tiny"), tmp_path / "o.pt", overrides(fx), json_path)
    stored = checkpoint.load(tmp_path / "o.pt")["categories"]
    assert [c["id"] for c in stored] == sorted(ids_in_file)
