"""What a run leaves besides its checkpoints: the selected epoch's metrics and TensorBoard files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tailseg.config import load_config
from tailseg.engine.tensorboard import ScalarLog
from tailseg.engine.trainer import RunState, _final_metrics

REPO = Path(__file__).resolve().parents[1]
HISTORY = [
    {"epoch": 0, "loss": 3.0, "lr": 1e-4, "segm.AP": 0.10, "segm.APr": -1.0},
    {"epoch": 1, "loss": 2.0, "lr": 1e-4, "segm.AP": 0.30, "segm.APr": 0.05},
    {"epoch": 2, "loss": 1.5, "lr": 1e-5, "segm.AP": 0.20, "segm.APr": 0.15},
]


@pytest.mark.parametrize(("select", "epoch", "ap"), [("best", 1, 0.30), ("last", 2, 0.20)])
def test_the_run_reports_the_epoch_it_selects(
    tmp_path: Path, select: str, epoch: int, ap: float
) -> None:
    cfg = load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), [f"train.select={select}"])
    state = RunState(best_value=0.30, best_epoch=1, history=HISTORY)
    final = _final_metrics(tmp_path, state, cfg)
    assert final["selected_epoch"] == epoch and final["segm"]["AP"] == ap
    assert final["best_epoch"] == 1  # the best is still named
    assert json.loads((tmp_path / "metrics.json").read_text()) == final


def test_tensorboard_gets_every_number_of_every_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = ScalarLog(tmp_path)
    for row in HISTORY:
        scalars.epoch(row)
    scalars.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"loss", "lr", "segm/AP", "segm/APr"}
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("segm/AP")] == [
        (0, 0.1),
        (1, 0.3),
        (2, 0.2),
    ]
    assert [e.step for e in events.Scalars("segm/APr")] == [1, 2]  # -1 (no rare objects): none


def test_training_goes_on_without_tensorboard(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with caplog.at_level("INFO", logger="tailseg.engine"):
        scalars = ScalarLog(tmp_path)
    scalars.epoch(HISTORY[0])
    scalars.close()
    assert scalars.writer is None and not (tmp_path / "tensorboard").exists()
    assert "pip install tensorboard" in caplog.text
