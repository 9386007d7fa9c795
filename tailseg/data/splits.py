"""Where a config's splits are: the synthetic benchmark (made once) or the configured files."""

from __future__ import annotations

from pathlib import Path

from tailseg.config import Config, ConfigError
from tailseg.data.synth import generate


def split_files(cfg: Config, split: str, synth_dir: Path) -> tuple[Path, Path]:
    """(annotation json, image root) of `split` ("train" or "val").

    With `data.synth` the benchmark is generated into `synth_dir` unless it is already there
    (val.json is written last, so its presence means a complete set).
    """
    if cfg.data.synth is not None:
        if not (synth_dir / "val.json").exists():
            generate(synth_dir, cfg.data.synth)
        return synth_dir / f"{split}.json", synth_dir / "images"
    files = getattr(cfg.data, split)
    if not files.json:
        raise ConfigError(f"config: data.{split}.json: not set (and no data.synth)")
    return Path(files.json), Path(files.images)
