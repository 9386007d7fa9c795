"""Study scales: one recipe config run at the report's size or shrunk to the synthetic benchmark.

The report's configs (`tailseg/configs/fuxi2021/`) are written at LVIS scale. A scale file
(`tailseg/configs/fuxi2021/scales/<name>.yaml`) says how such a config becomes a run of
another size, in three steps applied in this order::

    pixel_factor: 0.2286  # every pixel size × this, rounded: train and mosaic scale ranges,
                          # max sizes, the test scale and the TTA scales (1400 → 320)
    lr_factor: 4.0        # train.lr × this (a row's own change, CBNetV2's half lr, stays a half)
    mixed_precision: bf16 # rows with train.amp on use this dtype here (optional)
    overrides:            # then set outright: the data, the model's size, the schedule
      data: {synth: {...}}

so a row that changes a pixel size or the learning rate keeps its change *relative* to the
recipe at every scale. `overrides` must not set what a study's rows change (`tailseg ablate`
checks); dotted overrides from the command line come last and are taken as they are.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailseg.config.loader import (
    COMMAND_LINE,
    _build,
    _read_yaml,
    apply_overrides,
    load,
    named_yaml,
    to_dict,
    yaml_names,
)
from tailseg.config.schema import Config
from tailseg.errors import ConfigError

SCALE_DIR = Path(__file__).resolve().parents[1] / "configs" / "fuxi2021" / "scales"
# (section, field) of every pixel size a scale multiplies
PIXEL_FIELDS = (
    ("augment", "scale_range"),
    ("augment", "mosaic_scale_range"),
    ("augment", "max_size"),
    ("infer", "short_side"),
    ("infer", "max_size"),
    ("infer", "tta_scales"),
)


@dataclass(frozen=True)
class Scale:
    """A scale file: `pixel_factor`, `lr_factor`, then `overrides` (a nested config mapping)."""

    name: str
    path: Path
    pixel_factor: float = 1.0
    lr_factor: float = 1.0
    mixed_precision: Literal["bf16", "fp16"] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def flat_overrides(self) -> dict[str, Any]:
        """{dotted key: value} of `overrides`, one entry per leaf."""
        return dict(leaves(self.overrides))


def leaves(d: dict[str, Any], prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested mapping (an empty mapping is a leaf)."""
    for key, value in d.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + str(key), value


def scale_names() -> list[str]:
    return yaml_names(SCALE_DIR)


def load_scale(name: str) -> Scale:
    """A scale by name (`tiny`, `small`, `full`) or by the path of a scale file."""
    path = named_yaml(name, SCALE_DIR, "scale")
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - {"pixel_factor", "lr_factor", "mixed_precision", "overrides"})
    if unknown:
        raise ConfigError(
            f"{path}: {unknown[0]}: unknown key (known: pixel_factor, lr_factor, "
            "mixed_precision, overrides)"
        )
    factors = {}
    for key in ("pixel_factor", "lr_factor"):
        value = raw.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e3:
            raise ConfigError(f"{path}: {key}: must be a number in (0, 1000), got {value!r}")
        factors[key] = float(value)
    mixed = raw.get("mixed_precision")
    if mixed not in (None, "bf16", "fp16"):
        raise ConfigError(f"{path}: mixed_precision: must be bf16 or fp16, got {mixed!r}")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: overrides: must be a mapping of config sections")
    scale = Scale(path.stem, path, mixed_precision=mixed, overrides=overrides, **factors)
    try:  # every key and type of the overrides, checked now, not when a row is loaded
        _build(Config, _apply({}, scale.flat_overrides()), "", {}, str(path))
    except ConfigError as e:  # range checks need the row's values too: they run per row
        if "unknown key" in str(e) or "expected" in str(e) or "not one of" in str(e):
            raise
    return scale


def _apply(raw: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in flat.items():
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):  # absent, or a null section (data.synth)
                node[part] = {}
            node = node[part]
        node[last] = value
    return raw


def _times(value: Any, factor: float) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [_times(v, factor) for v in value]
    return max(1, round(value * factor))


def scaled(cfg: Config, scale: Scale) -> dict[str, Any]:
    """`cfg` as a plain dict with its pixel sizes and learning rate multiplied by the scale's
    factors and its mixed precision the scale's (the scale's `overrides` are not applied here)."""
    raw = to_dict(cfg)
    for section, name in PIXEL_FIELDS:
        holder = raw["data"]["augment"] if section == "augment" else raw[section]
        holder[name] = _times(holder[name], scale.pixel_factor)
    raw["train"]["lr"] = raw["train"]["lr"] * scale.lr_factor
    if scale.mixed_precision is not None and raw["train"]["amp"] != "off":
        raw["train"]["amp"] = scale.mixed_precision
    return raw


def load_scaled(
    path: str | Path, scale: Scale | str | None, overrides: typing.Sequence[str] = ()
) -> Config:
    """Load a recipe config at a scale: factors, then the scale's overrides, then `overrides`.

    Errors name the file that set the offending key: the config's chain, the scale file or the
    command line. `scale=None` is `load` itself.
    """
    if scale is None:
        return load(Config, path, overrides)
    if isinstance(scale, str):
        scale = load_scale(scale)
    raw = scaled(load(Config, path), scale)
    origins = {key: str(path) for key, _ in leaves(raw)}
    for dotted, value in scale.flat_overrides().items():
        _apply(raw, {dotted: value})
        origins[dotted] = str(scale.path)
    apply_overrides(raw, origins, overrides)
    try:
        return _build(Config, raw, "", origins, str(path))
    except ConfigError as e:
        if str(e).startswith(COMMAND_LINE) or str(scale.path) in str(e):
            raise
        raise ConfigError(f"{e} (at scale {scale.name})") from None
