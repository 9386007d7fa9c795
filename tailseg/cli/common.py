"""Helpers shared by CLI commands: locating configs, loading them with overrides."""

from __future__ import annotations

from pathlib import Path

from tailseg.config import Config, ConfigError, load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped inside the package


def resolve_config(name: str) -> Path:
    """A config path as given, or `<name>.yaml` of the configs shipped in the package."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"{name}: no such config file (named configs: {known})")


def load_run_config(name: str, overrides: list[str], scale: str | None = None) -> Config:
    """The config `name` with dotted overrides; with `scale` (tiny, small, full or a scale file),
    run at that study scale (`tailseg.config.scales`: the report's rows on the synthetic
    benchmark)."""
    if scale is None:
        return load_config(str(resolve_config(name)), overrides)
    from tailseg.config.scales import load_scaled

    return load_scaled(resolve_config(name), scale, overrides)
