"""Image paths of a dataset stay under the image root unless data.allow_outside_root."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from tailseg.cli.main import main
from tailseg.config import load_config
from tailseg.data import AnnotationFile, DataError, InstanceDataset
from tailseg.engine import checkpoint
from tailseg.models.build import build_model
from tests.test_htc import TINY
from tests.test_predict import OVERRIDES, predict_args


def dataset(tmp_path: Path, file_name: str) -> tuple[Path, Path]:
    """(json, image root): image 7 is `inside.png`, image 9 is `file_name`; both 8×10."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for path in (root / "inside.png", tmp_path / "outside.png"):
        Image.new("RGB", (10, 8), (200, 10, 10)).save(path)
    images = [
        {"id": 7, "file_name": "inside.png", "height": 8, "width": 10},
        {"id": 9, "file_name": file_name, "height": 8, "width": 10},
    ]
    gt = tmp_path / "gt.json"
    cats = [{"id": 3, "name": "x"}] + [{"id": 10 + k, "name": f"c{k}"} for k in range(5)]
    gt.write_text(json.dumps({"images": images, "categories": cats, "annotations": []}))
    return gt, root


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_paths_leaving_the_root_are_refused_naming_the_entry(tmp_path: Path, kind: str) -> None:
    name = {"dotdot": "sub/../../outside.png", "absolute": str(tmp_path / "outside.png")}
    gt, root = dataset(tmp_path, name[kind])
    ds = InstanceDataset(gt, root)
    assert ds.load_image(0).shape == (3, 8, 10)
    expected = f"{gt}: images[1] (id 9).file_name: '{ds.image_info(1).file_name}' leads to "
    with pytest.raises(DataError, match=re.escape(expected) + ".*outside the image root"):
        ds.load_image(1)
    allowed = InstanceDataset(gt, root, allow_outside_root=True)
    assert allowed.load_image(1)[0, 0, 0] == 200


def test_symlinks_under_the_root_are_the_users_layout(tmp_path: Path) -> None:
    """A json cannot make symlinks: one under the root (images/train2017 -> /mnt/...) was put
    there by the user and is followed."""
    gt, root = dataset(tmp_path, "sub/link.png")
    (root / "sub" / "link.png").symlink_to(tmp_path / "outside.png")
    assert InstanceDataset(gt, root).load_image(1)[0, 0, 0] == 200


def test_a_symlinked_root_is_its_target(tmp_path: Path) -> None:
    gt, root = dataset(tmp_path, "sub/../inside.png")  # `..` that stays inside is fine
    (tmp_path / "alias").symlink_to(root)
    ann = AnnotationFile.load(gt)
    assert ann.image_path(ann.images[1], tmp_path / "alias") == tmp_path / "alias/sub/../inside.png"


def test_coco_url_leaving_the_root_is_refused(tmp_path: Path) -> None:
    gt, root = dataset(tmp_path, "")
    data = json.loads(gt.read_text())
    data["images"][1] = {**data["images"][1], "coco_url": "../outside.png"}
    gt.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"images\[1\] \(id 9\)\.coco_url: '\.\./outside\.png'"):
        InstanceDataset(gt, root).load_image(1)


def test_predict_refuses_unless_the_config_allows(tmp_path: Path, capsys) -> None:
    gt, root = dataset(tmp_path, "../outside.png")
    ckpt = tmp_path / "best.pt"
    torch.manual_seed(0)
    checkpoint.save(
        ckpt, {"model": build_model(load_config(str(TINY), OVERRIDES).model).state_dict()}
    )
    args = predict_args(ckpt, tmp_path / "o", "--dataset", str(gt), "--image-root", str(root))
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {gt}: images[1] (id 9).file_name: '../outside.png' leads to")
    assert err.count("\n") == 1
    assert main([*args[:2], "data.allow_outside_root=true", *args[2:], "--no-progress"]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {r["image_id"] for r in results} == {7, 9}
