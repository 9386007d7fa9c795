"""Swin Transformer (Liu et al., 2021), detection variant: any input size, four output levels.

Per block: x + DropPath(W-MSA(LN(x))), then x + DropPath(MLP(LN(x))). W-MSA works on non-
overlapping windows of `window_size`² tokens (the map is padded to a window multiple); odd
blocks cyclically shift the map by window_size // 2 first and mask attention between tokens
that were not neighbours (the mask is built on the padded size), then shift back and crop.
Attention adds a learned bias per relative offset ((2W-1)² entries per head). Patch merging
concatenates 2×2 neighbours (padding odd sizes) and projects 4C → 2C. Each output level gets
its own LayerNorm. Parameter names follow the official microsoft/Swin-Transformer release, so
its checkpoints import with `load_official_swin`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: drop the residual branch per sample with probability p."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


def relative_position_index(window: int) -> Tensor:
    """(W², W²) index into the (2W-1)² bias table for every pair of tokens in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    flat = coords.flatten(1)  # (2, W²)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # (W², W², 2) dy, dx
    rel = rel + (window - 1)  # shift to 0..2W-2
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def window_partition(x: Tensor, w: int) -> Tensor:
    """(B, H, W, C) → (B · H/w · W/w, w·w, C)."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)  # (B, nh, nw, w, w, C)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: Tensor, w: int, h: int, wd: int) -> Tensor:
    """(B · H/w · W/w, w·w, C) → (B, H, W, C)."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // w) * (wd // w))
    x = windows.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)  # (B, nh, w, nw, w, C)
    return x.reshape(b, h, wd, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x (B·nW, N, C), mask (nW, N, N) of 0 / -100 or None → (B·nW, N, C)."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B·nW, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B·nW, heads, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1)[None]  # (1, heads, N, N)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)  # (B·nW, N, C)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, dp: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.drop_path = dp
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        """x (B, H·W, C) → (B, H·W, C)."""
        b, _, c = x.shape
        ws = self.window_size
        y = self.norm1(x).view(b, h, w, c)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))  # (B, Hp, Wp, C)
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(y, ws), mask if self.shift else None)
        y = window_reverse(windows, ws, hp, wp)  # (B, Hp, Wp, C)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :h, :w].reshape(b, h * w, c)
        x = x + drop_path(y, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """x (B, H·W, C) → (B, ⌈H/2⌉·⌈W/2⌉, 2C)."""
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        x = torch.cat(parts, dim=-1).view(b, -1, 4 * c)  # (B, H/2·W/2, 4C)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        dps: list[float],
        downsample: bool,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.window_size = window_size
        self.shift = window_size // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else self.shift, dps[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def shift_mask(self, h: int, w: int, device: torch.device) -> Tensor:
        """(nW, N, N) mask: 0 between tokens of the same region of the shifted map, else -100."""
        ws, s = self.window_size, self.shift
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        region = torch.zeros((1, hp, wp, 1), device=device)
        spans = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        for n, (ys, xs) in enumerate((ys, xs) for ys in spans for xs in spans):
            region[:, ys, xs, :] = n
        ids = window_partition(region, ws).squeeze(-1)  # (nW, N)
        mask = ids[:, None, :] - ids[:, :, None]
        return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)

    def forward(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, int, int]:
        """x (B, H·W, C) → (stage output (B, H·W, C), next input, its H, its W)."""
        mask = self.shift_mask(h, w, x.device) if len(self.blocks) > 1 else None
        for blk in self.blocks:
            if self.checkpoint and torch.is_grad_enabled():
                # activations recomputed in backward (same drop-path draws: RNG state restored)
                x = torch.utils.checkpoint.checkpoint(blk, x, h, w, mask, use_reentrant=False)
            else:
                x = blk(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        """x (B, 3, H, W) → tokens (B, H/4·W/4, C) after padding H, W to multiples of 4."""
        p = self.patch
        x = F.pad(x, (0, (p - x.shape[-1] % p) % p, 0, (p - x.shape[-2] % p) % p))
        x = self.proj(x)  # (B, C, H/4, W/4)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class SwinTransformer(nn.Module):
    """Features at strides 4, 8, 16, 32 with channels C, 2C, 4C, 8C.

    Variants: T (96, (2,2,6,2), (3,6,12,24)), S (96, (2,2,18,2), same heads), B (128,
    (2,2,18,2), (4,8,16,32)), L (192, (2,2,18,2), (6,12,24,48)).

    frozen_stages: 0 trains everything; k >= 1 freezes the patch embedding and stages 1..k with
    their output norms (as ResNet's stem and stages 1..k; mmdetection's Swin `frozen_stages=k`),
    and keeps them in eval mode (no drop path) when the model trains.

    checkpoint: recompute each block's activations in the backward pass instead of keeping them
    (torch.utils.checkpoint; mmdetection's `with_cp` / CBNetV2's `use_checkpoint`).
    """

    def __init__(
        self,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_path: float = 0.2,
        frozen_stages: int = 0,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.patch_embed: PatchEmbed | None = PatchEmbed(embed_dim)
        n = sum(depths)
        dps = [drop_path * i / max(n - 1, 1) for i in range(n)]  # linear stochastic depth
        self.layers = nn.ModuleList()
        start = 0
        for i, (d, heads) in enumerate(zip(depths, num_heads, strict=True)):
            self.layers.append(
                SwinStage(embed_dim * 2**i, d, heads, window_size, dps[start : start + d],
                          downsample=i < len(depths) - 1, checkpoint=checkpoint)
            )  # fmt: skip
            start += d
        self.out_channels = [embed_dim * 2**i for i in range(len(depths))]
        self.strides = [4 * 2**i for i in range(len(depths))]
        for i, c in enumerate(self.out_channels):
            self.add_module(f"norm{i}", nn.LayerNorm(c))
        self.apply(self._init)
        if not 0 <= frozen_stages <= len(depths):
            raise ValueError(f"frozen_stages: {frozen_stages} is not in 0..{len(depths)}")
        self.frozen_stages = frozen_stages
        for m in self.frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)
        self.train()

    def frozen_modules(self) -> list[nn.Module]:
        """The patch embedding (if any: a CBNet lead has none), stages 1..k and their output
        norms (none when k = 0)."""
        k = self.frozen_stages
        if k == 0:
            return []
        stem = [] if self.patch_embed is None else [self.patch_embed]
        return [*stem, *self.layers[:k], *(getattr(self, f"norm{i}") for i in range(k))]

    def train(self, mode: bool = True) -> SwinTransformer:
        """Frozen parts stay in eval mode (mmdetection's `_freeze_stages` after `train`)."""
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()
        return self

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Stage outputs before the output norms, each (B, H_i, W_i, C_i)."""
        if self.patch_embed is None:
            raise RuntimeError("this Swin has no patch embedding (a CBNet lead): run the composite")
        x, h, w = self.patch_embed(x)
        outs = []
        for stage in self.layers:
            y, x, h2, w2 = stage(x, h, w)
            outs.append(y.view(y.shape[0], h, w, -1))
            h, w = h2, w2
        return outs

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, H, W) → [(B, C·2^i, H/2^(i+2), W/2^(i+2))] for i = 0..3 (ceil sizes)."""
        return [
            getattr(self, f"norm{i}")(y).permute(0, 3, 1, 2).contiguous()
            for i, y in enumerate(self.forward_stages(x))
        ]


def load_official_swin(
    model: SwinTransformer, state_dict: Mapping[str, Tensor]
) -> dict[str, list[str]]:
    """Import a microsoft/Swin-Transformer classification checkpoint (its `model` dict).

    Drops the classifier `head.*`, the final `norm.*` and the `relative_position_index` /
    `attn_mask` buffers; resizes relative-position tables bicubically when the window differs.
    Returns {"missing": [...], "unexpected": [...]}; raises KeyError when anything but the
    per-level output norms is missing, or anything is left unused.
    """
    own = model.state_dict()
    sd: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith(("head.", "norm.")) or k.endswith(("relative_position_index", "attn_mask")):
            continue
        if k.endswith("relative_position_bias_table") and k in own and v.shape != own[k].shape:
            v = _resize_table(v, own[k].shape[0])
        sd[k] = v
    missing, unexpected = model.load_state_dict(sd, strict=False)
    out_norms = {f"norm{i}.{p}" for i in range(len(model.layers)) for p in ("weight", "bias")}
    bad_missing = [k for k in missing if k not in out_norms]
    if bad_missing or unexpected:
        raise KeyError(
            f"Swin checkpoint does not fit: missing {bad_missing[:6]}, unexpected {unexpected[:6]}"
        )
    return {"missing": list(missing), "unexpected": list(unexpected)}


def _resize_table(table: Tensor, entries: int) -> Tensor:
    """((2W-1)², heads) → ((2W'-1)², heads), bicubic on the (2W-1) × (2W-1) grid."""
    old = round(table.shape[0] ** 0.5)
    new = round(entries**0.5)
    grid = table.T.reshape(1, table.shape[1], old, old)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], new * new).T.contiguous()
