"""Engine parts: schedule, parameter groups, EMA, checkpoints (atomic, corrupt, fallback)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tailseg.config import load_config
from tailseg.engine import checkpoint
from tailseg.engine.checkpoint import CheckpointError
from tailseg.engine.ema import ModelEMA
from tailseg.engine.optim import lr_factor, parameter_groups
from tests.test_htc import TINY_SWIN, tiny_model

REPO = Path(__file__).resolve().parents[1]


def test_warmup_then_steps_by_hand() -> None:
    def f(it):
        return lr_factor(
            it,
            iters_per_epoch=10,
            warmup_iters=5,
            warmup_ratio=0.001,
            steps=(2, 3),
        )

    assert f(0) == pytest.approx(0.001)
    assert f(2) == pytest.approx(0.001 + 0.999 * 2 / 5)
    assert f(5) == 1.0 and f(19) == 1.0
    assert f(20) == pytest.approx(0.1)  # epoch 2
    assert f(35) == pytest.approx(0.01)  # epoch 3


def test_no_weight_decay_on_norms_biases_and_position_tables() -> None:
    from tailseg.models.backbones.swin import SwinTransformer

    model = nn.ModuleDict(
        {"swin": SwinTransformer(16, (2, 2, 2, 2), (1, 2, 4, 8), 4), "fc": nn.Linear(3, 4)}
    )
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no = {names[id(p)] for p in no_decay["params"]}
    yes = {names[id(p)] for p in decay["params"]}
    assert "fc.weight" in yes and "fc.bias" in no
    assert any(n.endswith("relative_position_bias_table") for n in no)
    assert not any(n.endswith("relative_position_bias_table") for n in yes)
    assert all("norm" not in n for n in yes)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


SWIN_KEYS = ("absolute_pos_embed", "relative_position_bias_table", "norm")  # the recipe's keys


def test_swin_recipe_decays_biases_but_not_norms_or_position_tables() -> None:
    model = tiny_model(*TINY_SWIN, "model.roi.classifier=cosine")
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = parameter_groups(model, 0.05, "norms_positions")
    no = {names[id(p)] for p in no_decay["params"]}
    yes = {names[id(p)] for p in decay["params"]}
    # exactly what mmdetection's paramwise_cfg custom_keys match (substrings of the name)
    assert no == {n for n in names.values() if any(k in n for k in SWIN_KEYS)}
    assert yes == set(names.values()) - no
    assert {"box_heads.0.fc1.bias", "box_heads.0.cls.bias", "backbone.patch_embed.proj.bias"} <= yes
    assert "backbone.layers.0.blocks.0.attn.relative_position_bias_table" in no
    # the default policy also exempts every bias
    _, default_no = parameter_groups(model, 0.05)
    assert {names[id(p)] for p in default_no["params"]} == no | {
        n for n in names.values() if n.endswith(".bias")
    }


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        ("htc_swin_t_fpn_lvis", "norms_positions"),
        ("htc_swin_s_fpn_lvis", "norms_positions"),
        ("htc_swin_b_fpn_lvis", "norms_positions"),
        ("htc_swin_l_fpn_lvis", "norms_positions"),
        ("htc_r50_fpn_lvis", "norms_biases_positions"),
        ("tiny", "norms_biases_positions"),
    ],
)
def test_configs_choose_the_weight_decay_policy_of_their_recipe(name: str, policy: str) -> None:
    assert load_config(str(REPO / "tailseg" / "configs" / f"{name}.yaml")).train.no_decay == policy


def test_ema_momentum_and_update_by_hand() -> None:
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(1.0)
    ema = ModelEMA(model, momentum=0.1, gamma=10.0)
    m0 = 0.9 * math.exp(-1 / 10) + 0.1
    assert ema.current_momentum() == pytest.approx(m0)
    model.weight.data.fill_(3.0)
    ema.update(model)  # 1·(1 - m0) + 3·m0
    assert float(ema.module.weight) == pytest.approx(1 + 2 * m0)
    assert int(ema.steps) == 1 and ema.current_momentum() < m0
    for _ in range(200):
        ema.update(model)
    assert float(ema.module.weight) == pytest.approx(3.0, abs=1e-6)
    assert not ema.module.weight.requires_grad


def test_checkpoint_round_trip_and_fallback(tmp_path: Path, caplog) -> None:
    checkpoint.save(
        tmp_path / "last.pt", {"model": {"w": torch.ones(2)}, "step": 1}, keep_previous=True
    )
    checkpoint.save(
        tmp_path / "last.pt", {"model": {"w": torch.ones(2)}, "step": 2}, keep_previous=True
    )
    path, state = checkpoint.load_last_good(tmp_path)
    assert path.name == "last.pt" and state["step"] == 2
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 truncated")  # a kill mid-copy elsewhere
    with caplog.at_level(logging.WARNING, logger="tailseg.engine"):
        path, state = checkpoint.load_last_good(tmp_path)
    assert path.name == "last.prev.pt" and state["step"] == 1
    assert "last.pt: corrupt checkpoint" in caplog.text
    (tmp_path / "last.prev.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last\.pt: corrupt.*last\.prev\.pt: corrupt"):
        checkpoint.load_last_good(tmp_path)
    assert checkpoint.load_last_good(tmp_path / "empty") is None


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x\.pt: not a tailseg checkpoint"):
        checkpoint.load(tmp_path / "x.pt")


class _RunsCode:
    """Pickles as a call of os.system: loading it with pickle would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"model": {"w": torch.ones(2)}, "x": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: .*posix\.system"):
        checkpoint.load(tmp_path / "evil.pt")
    assert not marker.exists()
    # the fallback does not rescue it either: it is named and skipped like a corrupt file
    (tmp_path / "run").mkdir()
    torch.save({"model": {}, "x": _RunsCode(marker)}, tmp_path / "run" / "last.pt")
    with pytest.raises(CheckpointError, match=r"last\.pt: refused"):
        checkpoint.load_last_good(tmp_path / "run")
    assert not marker.exists()


def test_numpy_values_are_stored_as_plain_data(tmp_path: Path) -> None:
    state = {"model": {"w": torch.ones(1)}, "m": {"AP": np.float64(0.5), "n": np.int64(3)}}
    checkpoint.save(tmp_path / "a.pt", state)
    loaded = checkpoint.load(tmp_path / "a.pt")
    assert loaded["m"] == {"AP": 0.5, "n": 3} and type(loaded["m"]["AP"]) is float


def test_lr_scales_linearly_with_the_total_batch() -> None:
    from tailseg.config import TrainConfig
    from tailseg.engine.trainer import scaled_lr

    tc = TrainConfig(lr=1e-4, batch_size=2, lr_reference_batch=16)
    assert scaled_lr(tc, 8) == 1e-4  # the report's 8 × 2
    assert scaled_lr(tc, 1) == pytest.approx(1e-4 * 2 / 16)
    assert scaled_lr(TrainConfig(lr=1e-4, batch_size=2), 1) == 1e-4  # no reference: as given
