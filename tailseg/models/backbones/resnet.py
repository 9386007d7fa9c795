"""ResNet with bottleneck blocks (torchvision layout), frozen BatchNorm and frozen early stages.

Parameter names follow torchvision's `resnet50/101`, so their state dicts load strictly (the
classifier `fc` is dropped). `base_width` shrinks every stage for CPU tests; depth = 3 · Σ
blocks + 2 (14, 26, 50, 101).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

BLOCKS = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), FrozenBatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet(nn.Module):
    """C2–C5 features (strides 4, 8, 16, 32) of a bottleneck ResNet.

    frozen_stages: 0 trains everything, 1 freezes the stem and the first stage (the usual
    detection setting), k freezes the stem and stages 1..k (mmdetection's `frozen_stages=k`;
    the same integer freezes the same parts of a Swin). Every norm is a FrozenBatchNorm2d, so
    there is no train mode to keep frozen parts out of.
    """

    def __init__(self, depth: int = 50, base_width: int = 64, frozen_stages: int = 1) -> None:
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"depth: {depth} is not one of {sorted(BLOCKS)}")
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = base_width
        self.out_channels: list[int] = []
        for i, n in enumerate(BLOCKS[depth]):
            planes = base_width * 2**i
            blocks = [Bottleneck(inplanes, planes, stride=1 if i == 0 else 2)]
            inplanes = planes * EXPANSION
            blocks += [Bottleneck(inplanes, planes) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.out_channels.append(inplanes)
        self.strides = [4, 8, 16, 32]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if not 0 <= frozen_stages <= len(BLOCKS[depth]):
            raise ValueError(f"frozen_stages: {frozen_stages} is not in 0..{len(BLOCKS[depth])}")
        self.frozen_stages = frozen_stages
        frozen = [self.conv1] + [getattr(self, f"layer{i}") for i in range(1, frozen_stages + 1)]
        for module in frozen if frozen_stages > 0 else []:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, H, W) → [C2 (B, 4w, H/4, W/4), C3, C4, C5 (B, 32w, H/32, W/32)]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        return outs

    def load_torchvision(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a torchvision ResNet state dict (strict, except the classifier `fc.*`)."""
        sd = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        missing, unexpected = self.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise KeyError(
                f"torchvision ResNet state dict does not fit: missing {missing[:5]}"
                f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            )


def load_checkpoint_file(path: str) -> dict[str, Tensor]:
    """A state dict from a .pth file (optionally under 'state_dict' or 'model'), on the CPU."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    return obj
