"""A finished run is never lost: refused folders, locks, early image checks, safe resumes.

Every refusal here happens before any training step, so these tests are fast.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from tailseg.cli.main import main
from tailseg.config import load_config, to_dict
from tailseg.data.splits import split_files
from tailseg.engine import checkpoint
from tailseg.engine.checkpoint import CheckpointError
from tailseg.engine.run_dir import LOCK, RunDirError, claim
from tailseg.engine.trainer import _check_resumable, train

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = [
    "model.num_classes=4",
    "data.synth.num_classes=4",
    "data.synth.train_images=6",
    "data.synth.val_images=2",
    "data.synth.min_side=48",
    "data.synth.max_side=64",
    "data.synth.max_objects=3",
]


def tiny(*overrides: str):
    return load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), [*TINY_DATA, *overrides])


def test_a_folder_with_an_earlier_run_is_refused_untouched(tmp_path: Path, capsys) -> None:
    (tmp_path / "best.pt").write_bytes(b"the earlier run's weights")
    (tmp_path / "metrics.json").write_text("{}")
    assert main(["train", "tiny", "--out", str(tmp_path), *TINY_DATA]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path}: holds an earlier run (best.pt, metrics.json)")
    assert "--resume" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert (tmp_path / "best.pt").read_bytes() == b"the earlier run's weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "best.pt", "metrics.json"]


def test_overwrite_removes_the_earlier_run_but_keeps_the_generated_data(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"old")
    (tmp_path / "old_dir").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text("{}")
    with claim(tmp_path, resume=False, overwrite=True):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "data"]
    assert (tmp_path / "data" / "train.json").exists()
    with (
        pytest.raises(RunDirError, match="exclude each other"),
        claim(tmp_path, resume=True, overwrite=True),
    ):
        pass


def test_a_second_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with claim(tmp_path, resume=False, overwrite=False):
        holder = json.loads((tmp_path / LOCK).read_text())
        with (
            pytest.raises(RunDirError, match=rf"in use by another run \(pid {holder['pid']} on"),
            claim(tmp_path, resume=True, overwrite=False),
        ):
            pass
        assert json.loads((tmp_path / LOCK).read_text()) == holder  # the refusal keeps it
    with claim(tmp_path, resume=True, overwrite=False):  # released at exit
        pass


def test_a_stale_lock_is_noticed_and_taken_over(tmp_path: Path, caplog) -> None:
    # a run killed with SIGKILL leaves its lock file written but not locked
    (tmp_path / LOCK).write_text(json.dumps({"pid": 999999, "host": "h", "command": "x"}))
    with (
        caplog.at_level(logging.INFO, logger="tailseg.engine"),
        claim(tmp_path, resume=True, overwrite=False),
    ):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] != 999999
    assert "stale lock of an ended run (pid 999999" in caplog.text


def test_an_unusable_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(RunDirError, match=r"file/run: cannot use as a run folder"),
        claim(tmp_path / "file" / "run", resume=False, overwrite=False),
    ):
        pass


def test_a_missing_val_image_stops_the_run_before_the_first_step(tmp_path: Path, capsys) -> None:
    split_files(tiny(), "val", tmp_path / "data")
    victim = sorted((tmp_path / "data" / "images" / "val").iterdir())[-1]
    victim.unlink()
    assert main(["train", "tiny", "--out", str(tmp_path), *TINY_DATA]) == 2
    err = capsys.readouterr().err
    assert "val.json: images: 1 of 2 images cannot be used" in err
    assert f"image id {int(victim.stem)}: image file not found (tried {victim}" in err
    assert not (tmp_path / "last.pt").exists()


def test_changed_synthetic_parameters_regenerate_the_benchmark(tmp_path: Path) -> None:
    train_json, _ = split_files(tiny(), "train", tmp_path)
    first = train_json.read_text()
    split_files(tiny(), "train", tmp_path)  # same parameters: reused as it is
    assert train_json.read_text() == first
    split_files(tiny("data.synth.seed=2"), "train", tmp_path)
    assert train_json.read_text() != first
    assert json.loads((tmp_path / "synth.json").read_text())["seed"] == 2
    split_files(tiny(), "train", tmp_path)  # and back: byte-identical to the first
    assert train_json.read_text() == first


def _fake_last(run_dir: Path, cfg) -> None:
    checkpoint.save(run_dir / "last.pt", {"model": {}, "config": to_dict(cfg)})


def test_resume_with_another_architecture_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    _fake_last(tmp_path, tiny("model.backbone.depth=26"))
    with pytest.raises(
        CheckpointError,
        match=r"last\.pt: cannot resume with another model or data"
        r" \(model\.backbone\.depth: 26 in the checkpoint, 14 now",
    ):
        train(tiny("model.backbone.depth=14"), tmp_path, resume=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "last.pt"]


def test_a_run_from_before_a_new_model_field_resumes_while_the_field_is_at_its_default(
    tmp_path: Path,
) -> None:
    old = to_dict(tiny())
    del old["model"]["assist_loss_weight"]  # as a checkpoint written before the field existed
    del old["model"]["backbone"]["composite"]
    checkpoint.save(tmp_path / "last.pt", {"model": {}, "config": old})
    found = (tmp_path / "last.pt", checkpoint.load(tmp_path / "last.pt"))
    _check_resumable(*found, tiny())  # the defaults: the same model
    with pytest.raises(CheckpointError, match=r"model\.backbone\.composite: None in the"):
        _check_resumable(*found, tiny("model.backbone.composite=true"))


def test_resume_with_weights_that_do_not_fit_is_one_error(tmp_path: Path) -> None:
    cfg = tiny()
    checkpoint.save(
        tmp_path / "last.pt",
        {"model": {"backbone.stem.weight": torch.zeros(1)}, "config": to_dict(cfg)},
    )
    with pytest.raises(CheckpointError, match=r"last\.pt: does not fit this run's model"):
        train(cfg, tmp_path, resume=True, progress=False)


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "config.yaml").write_text("old")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tailseg.utils.files.os.fsync", no_space)
    out = tmp_path / "run"
    assert main(["train", "tiny", "--out", str(out), *TINY_DATA]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {out / 'config.yaml'}: cannot write (No space left on device); "
        "the previous file is kept"
    )
    assert (tmp_path / "config.yaml").read_text() == "old"
    assert [p.name for p in out.iterdir()] == [LOCK]  # no temporary file left behind


def test_unreadable_and_mis_sized_images_are_named(tmp_path: Path) -> None:
    from tailseg.data import DataError, InstanceDataset

    train_json, root = split_files(tiny(), "train", tmp_path)
    data = InstanceDataset(train_json, root)
    data.check_images()  # a fresh benchmark is fine
    data.image_path(0).write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", (5, 7)).save(data.image_path(1), format="JPEG")
    with pytest.raises(DataError) as e:
        data.check_images()
    msg = str(e.value)
    assert msg.startswith(f"{train_json}: images: 2 of 6 images cannot be used")
    assert f"image id {data.image_ids[0]}: {data.image_path(0)}: cannot read" in msg
    im = data.image_info(1)
    assert f"is 7x5, json says {im.height}x{im.width}" in msg
