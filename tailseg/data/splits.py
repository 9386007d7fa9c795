"""Where a config's splits are: the synthetic benchmark (made once per parameters) or the
configured files."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from tailseg.config import Config, ConfigError, to_dict
from tailseg.data.synth import generate
from tailseg.data.synth.generate import STAMP

log = logging.getLogger("tailseg.data")


def split_files(
    cfg: Config, split: str, synth_dir: Path, progress: bool = True
) -> tuple[Path, Path]:
    """(annotation json, image root) of `split` ("train" or "val").

    With `data.synth` the benchmark is generated into `synth_dir` unless a complete one of the
    same parameters is already there: `generate` writes the parameters (`synth.json`) last, so
    a set whose stamp equals `data.synth` is complete and is the one the config asks for. Any
    other set there (other parameters, half written, from an older tailseg) is replaced.
    """
    if cfg.data.synth is not None:
        wanted = to_dict(cfg.data.synth)
        stamp = synth_dir / STAMP
        try:
            have = json.loads(stamp.read_text()) if stamp.exists() else None
        except (OSError, ValueError):
            have = None
        if have != wanted:
            stale = [p for p in ("train.json", "val.json", "images") if (synth_dir / p).exists()]
            if stale:
                log.warning(
                    "%s: the benchmark there was made with other parameters (%s); regenerating",
                    synth_dir,
                    _differences(have, wanted),
                )
                stamp.unlink(missing_ok=True)
                for name in stale:
                    path = synth_dir / name
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            generate(synth_dir, cfg.data.synth, progress=progress)
        return synth_dir / f"{split}.json", synth_dir / "images"
    files = getattr(cfg.data, split)
    if not files.json:
        raise ConfigError(f"config: data.{split}.json: not set (and no data.synth)")
    return Path(files.json), Path(files.images)


def _differences(have: dict | None, wanted: dict) -> str:
    if have is None:
        return "no parameter record"
    keys = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
    return ", ".join(f"{k}: {have.get(k)} → {wanted.get(k)}" for k in keys) or "same"
