"""CBNetV2 composite backbones (Liang et al., 2021): two identical networks, an assistant and a
lead, with dense higher-level composition (the report's "Strong Baseline", CB-Swin-L).

    assistant: a full network → its outputs A_1..A_4 (strides 4..32)
    lead:      the assistant's stem output (`cb_del_stages=1`: the lead has no stem of its own),
               then before each stage i:  x_i ← x_i + Σ_{j ≥ i} nearest(link_ij(A_j), size of x_i)

Swin: every j ≥ i feeds stage i; link_ii is the identity (A_i is already at stage i's width and
size), link_ij for j > i a 1×1 conv with bias, zero-initialised, so at the start the lead's stage
i gets its own input plus exactly the assistant's (normed) level-i output. A_j are the outputs
after the per-level LayerNorms, and the sum is added to the stage's input tokens.

ResNet: only strictly higher levels feed a stage (a ResNet stage halves the size at its start,
so stage i's input has level i−1's size): link_ij = 1×1 conv (no bias) + BatchNorm whose γ and β
start at 0 and whose statistics stay at mean 0 / variance 1 (always in eval mode); only γ, β and
the conv learn. The lead's first stage is the assistant's (C2 is shared).

`forward` returns the lead's levels (what inference uses; the neck and heads never see the
assistant's); `forward_pair` returns (assistant's, lead's) for training, where the detector adds
the assistant's losses with a weight (0.5). Both networks keep their own drop-path schedule and
freeze the same `frozen_stages`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from tailseg.models.backbones.resnet import ResNet
from tailseg.models.backbones.swin import SwinTransformer, load_official_swin


def _nearest(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="nearest")


class CompositeBackbone(nn.Module):
    """Common surface: `out_channels`, `strides`, `forward` (lead), `forward_pair`."""

    assistant: nn.Module
    lead: nn.Module

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, H, W) → the lead's levels, as the single network's."""
        return self.forward_pair(x)[1]

    def forward_pair(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        raise NotImplementedError


class CBSwinTransformer(CompositeBackbone):
    """Two Swin Transformers of one size; the lead has no patch embedding of its own."""

    def __init__(self, assistant: SwinTransformer, lead: SwinTransformer) -> None:
        super().__init__()
        if _swin_shape(assistant) != _swin_shape(lead):
            raise ValueError(
                f"CBNet: the assistant and the lead must be the same Swin size, got "
                f"{_swin_shape(assistant)} and {_swin_shape(lead)} (channels, depths, window)"
            )
        self.assistant = assistant
        self.lead = lead
        lead.patch_embed = None  # starts from the assistant's patch tokens
        chans = assistant.out_channels
        self.out_channels = list(lead.out_channels)
        self.strides = list(lead.strides)
        # links[i][j - i - 1]: level j > i → stage i's width (level i itself is added as it is)
        self.links = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(chans[j], chans[i], 1) for j in range(i + 1, len(chans)))
            for i in range(len(chans))
        )
        for row in self.links:
            for conv in row:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def feed(self, outs: list[Tensor], i: int, size: tuple[int, int]) -> Tensor:
        """Σ_{j ≥ i} of the assistant's levels mapped to stage i: tokens (B, h·w, C_i)."""
        total = _nearest(outs[i], size)
        for conv, a in zip(self.links[i], outs[i + 1 :], strict=True):
            total = total + _nearest(conv(a), size)
        return total.flatten(2).transpose(1, 2)  # (B, C_i, h, w) → (B, h·w, C_i)

    def forward_pair(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        a, lead = self.assistant, self.lead
        tokens, h, w = a.patch_embed(x)  # (B, h·w, C)
        a_outs, sizes = [], []
        t = tokens
        for i, stage in enumerate(a.layers):
            sizes.append((h, w))
            y, t, h2, w2 = stage(t, h, w)
            a_outs.append(_level(a, i, y, h, w))  # (B, C_i, h, w)
            h, w = h2, w2
        l_outs = []
        t = tokens
        for i, stage in enumerate(lead.layers):
            h, w = sizes[i]
            t = t + self.feed(a_outs, i, (h, w))
            y, t, _, _ = stage(t, h, w)
            l_outs.append(_level(lead, i, y, h, w))
        return a_outs, l_outs

    def load_official(self, state_dict: Mapping[str, Tensor]) -> None:
        """One official Swin checkpoint into both networks (the lead without patch_embed.*);
        the links keep their zeros."""
        load_official_swin(self.assistant, state_dict)
        rest = {k: v for k, v in state_dict.items() if not k.startswith("patch_embed.")}
        load_official_swin(self.lead, rest)


def _swin_shape(net: SwinTransformer) -> tuple:
    return (
        tuple(net.out_channels),
        tuple(len(stage.blocks) for stage in net.layers),
        net.layers[0].window_size,
    )


def _level(net: SwinTransformer, i: int, y: Tensor, h: int, w: int) -> Tensor:
    """Stage output tokens (B, h·w, C) → its normed level (B, C, h, w)."""
    return getattr(net, f"norm{i}")(y).view(y.shape[0], h, w, -1).permute(0, 3, 1, 2)


class CBResNet(CompositeBackbone):
    """Two ResNets of one depth; the lead has no stem and no first stage (its C2 is the
    assistant's)."""

    def __init__(self, assistant: ResNet, lead: ResNet) -> None:
        super().__init__()
        if assistant.out_channels != lead.out_channels:
            raise ValueError("CBNet: the assistant and the lead must be the same ResNet")
        self.assistant = assistant
        self.lead = lead
        lead.conv1 = lead.bn1 = lead.layer1 = None  # starts from the assistant's C2
        chans = assistant.out_channels  # C2..C5
        self.out_channels = list(chans)
        self.strides = list(lead.strides)
        # links[k][j - k - 1]: for the lead's stage k + 1 (k = 1..3, input: level k's size and
        # channels), level j > k of the assistant; links[0] is empty (stage 1 is shared)
        self.links = nn.ModuleList(
            nn.ModuleList(_conv_bn(chans[j], chans[k - 1]) for j in range(k, len(chans)))
            if k > 0
            else nn.ModuleList()
            for k in range(len(chans))
        )

    def train(self, mode: bool = True) -> CBResNet:
        """The links' BatchNorms always normalise with their fixed statistics (0, 1)."""
        super().train(mode)
        for row in self.links:
            for link in row:
                link[1].eval()
        return self

    def forward_pair(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        a_outs = self.assistant(x)  # [C2..C5]
        t = a_outs[0]
        l_outs = [t]
        for k in range(1, len(a_outs)):  # the lead's stages 2..4
            size = tuple(t.shape[-2:])
            for link, a in zip(self.links[k], a_outs[k:], strict=True):
                t = t + _nearest(link(a), size)
            t = getattr(self.lead, f"layer{k + 1}")(t)
            l_outs.append(t)
        return a_outs, l_outs

    def load_torchvision(self, state_dict: Mapping[str, Tensor]) -> None:
        """One torchvision ResNet state dict into both networks (the lead without its stem and
        first stage)."""
        self.assistant.load_torchvision(state_dict)
        skip = ("conv1.", "bn1.", "layer1.")
        self.lead.load_torchvision({k: v for k, v in state_dict.items() if not k.startswith(skip)})


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    bn = nn.BatchNorm2d(cout)
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn)
