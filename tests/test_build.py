"""`models/build.py`: what a config's backbone section builds (recipes, frozen stages)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailseg.config import load_config
from tailseg.models.build import build_backbone

REPO = Path(__file__).resolve().parents[1]


def test_swin_l_drops_paths_as_the_cbnetv2_recipe() -> None:
    cfg = load_config(str(REPO / "configs" / "htc_swin_l_fpn_lvis.yaml")).model.backbone
    with torch.device("meta"):  # Swin-L's shapes only, no memory
        swin = build_backbone(cfg)
    rates = [b.drop_path for stage in swin.layers for b in stage.blocks]
    assert len(rates) == 24 and rates[0] == 0.0
    assert rates[-1] == pytest.approx(0.2)  # drop_path_rate 0.2, linear over the 24 blocks
