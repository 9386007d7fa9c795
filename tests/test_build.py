"""`models/build.py`: what a config's backbone section builds (recipes, frozen stages)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailseg.config import BackboneConfig, load_config
from tailseg.models.build import build_backbone

REPO = Path(__file__).resolve().parents[1]


def test_swin_l_drops_paths_as_the_cbnetv2_recipe() -> None:
    cfg = load_config(str(REPO / "tailseg" / "configs" / "htc_swin_l_fpn_lvis.yaml")).model.backbone
    with torch.device("meta"):  # Swin-L's shapes only, no memory
        swin = build_backbone(cfg)
    rates = [b.drop_path for stage in swin.layers for b in stage.blocks]
    assert len(rates) == 24 and rates[0] == 0.0
    assert rates[-1] == pytest.approx(0.2)  # drop_path_rate 0.2, linear over the 24 blocks


def under(names: list[str], roots: list[str]) -> set[str]:
    """The names equal to a root or inside one (`layers.1` holds `layers.1.x`, not `layers.10`)."""
    return {n for n in names if any(n == r or n.startswith(r + ".") for r in roots)}


RESNET = {"kind": "resnet", "depth": 14, "base_width": 8}
SWIN = {
    "kind": "swin",
    "embed_dim": 16,
    "depths": (2, 2, 2, 2),
    "num_heads": (1, 2, 4, 8),
    "window_size": 4,
}


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_frozen_stages_mean_the_same_for_every_backbone(k: int) -> None:
    """k = 0 trains everything; k >= 1 freezes the stem and stages 1..k, whichever backbone."""
    resnet = build_backbone(BackboneConfig(**RESNET, frozen_stages=k)).train()
    roots = ["conv1", "bn1", *(f"layer{i}" for i in range(1, k + 1))] if k else []
    names = [n for n, _ in resnet.named_parameters()]
    frozen = {n for n, p in resnet.named_parameters() if not p.requires_grad}
    assert frozen == under(names, roots) and (k == 0) == (not frozen)
    # its norms are frozen BatchNorms: no batch statistics in any mode
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in resnet.modules())

    swin = build_backbone(BackboneConfig(**SWIN, frozen_stages=k)).train()
    roots = ["patch_embed", *(f"layers.{i}" for i in range(k)), *(f"norm{i}" for i in range(k))]
    roots = roots if k else []
    names = [n for n, _ in swin.named_parameters()]
    frozen = {n for n, p in swin.named_parameters() if not p.requires_grad}
    assert frozen == under(names, roots) and (k == 0) == (not frozen)
    # frozen parts stay in eval mode (no drop path) while the rest trains
    modules = [n for n, _ in swin.named_modules() if n]
    assert {n for n, m in swin.named_modules() if n and not m.training} == under(modules, roots)


@pytest.mark.parametrize("kind", ["resnet", "swin"])
def test_frozen_stages_beyond_the_four_stages_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match=r"frozen_stages: must be in 0\.\.4"):
        BackboneConfig(kind=kind, frozen_stages=5)  # type: ignore[arg-type]
