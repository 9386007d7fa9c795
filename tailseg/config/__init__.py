"""Typed run configuration loaded from YAML (`base:` parent, dotted overrides)."""

from tailseg.config.loader import ConfigError, dump, from_dict, load, to_dict
from tailseg.config.schema import (
    AugmentConfig,
    BackboneConfig,
    Config,
    DataConfig,
    EvalConfig,
    InferConfig,
    ModelConfig,
    RoIConfig,
    RPNConfig,
    SplitConfig,
    SynthConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "BackboneConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "InferConfig",
    "ModelConfig",
    "RPNConfig",
    "RoIConfig",
    "SplitConfig",
    "SynthConfig",
    "TrainConfig",
    "dump",
    "from_dict",
    "load",
    "load_config",
    "to_dict",
]


def load_config(path: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a run config (`tailseg/configs/*.yaml`) with dotted `key.sub=value` overrides."""
    return load(Config, path, overrides)
