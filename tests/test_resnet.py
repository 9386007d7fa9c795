"""ResNet: torchvision state dicts load strictly and give torchvision's own features."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tailseg.config.schema import RESNET_DEPTHS
from tailseg.models.backbones.resnet import BLOCKS, ResNet


@pytest.mark.parametrize("depth", [50, 101])
def test_torchvision_weights_give_torchvision_features(depth: int) -> None:
    torch.manual_seed(depth)
    ref = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    for m in ref.modules():  # non-trivial BN statistics, so a wrong mapping would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    ours = ResNet(depth)
    ours.load_torchvision(ref.state_dict())
    ours, ref = ours.double(), ref.double()  # float64: differences are then mapping, not rounding
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        feats = ours(x)
        y = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        for i, f in enumerate(feats):
            y = getattr(ref, f"layer{i + 1}")(y)
            # float64 noise grows with depth and activation size (seen: 1.3e-9 relative at
            # ResNet-101); a wrong mapping differs by O(1), so 1e-7 of the scale separates them
            scale = float(y.abs().max())
            torch.testing.assert_close(f, y, rtol=1e-7, atol=1e-7 * scale)
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048] == ours.out_channels


def test_wrong_state_dict_is_reported() -> None:
    ref = torchvision.models.resnet50(weights=None).state_dict()
    with pytest.raises(KeyError, match="missing"):
        ResNet(101).load_torchvision(ref)


def test_frozen_stages_take_no_gradient() -> None:
    net = ResNet(14, base_width=8, frozen_stages=1)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in net.named_parameters() if n.startswith(("conv1", "layer1"))}
    assert not any(p.requires_grad for n, p in net.named_buffers())


def test_the_config_allows_exactly_the_depths_resnet_builds() -> None:
    assert sorted(BLOCKS) == list(RESNET_DEPTHS)
