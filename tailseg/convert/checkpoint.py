"""`convert_checkpoint`: another toolkit's checkpoint file → a tailseg checkpoint that `tailseg
predict`, `eval` and `train --resume`-free fine-tuning load like any of tailseg's own.

Foreign checkpoints hold Python objects besides tensors (mmengine's message hub, NumPy
scalars in `meta`). They are read with torch's weights-only unpickler, every such object
standing in as an inert placeholder, so that loading a file never runs code from it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from tailseg.config import Config, dump, load_config, to_dict
from tailseg.convert.keymap import Report
from tailseg.data.annotations import AnnotationFile, Category
from tailseg.engine import checkpoint
from tailseg.errors import CheckpointError, ConversionError
from tailseg.models.build import build_model
from tailseg.utils.files import atomic_write_text

log = logging.getLogger("tailseg.convert")


class Foreign:
    """An object of another toolkit, kept inert: its constructor arguments and state only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def load_foreign(path: str | Path) -> dict[str, Any]:
    """A checkpoint of another toolkit, its Python objects replaced by `Foreign` placeholders."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as f:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(f)
        stand_ins = [(type(f"Foreign[{n}]", (Foreign,), {}), n) for n in names]
        with torch.serialization.safe_globals(stand_ins):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (a {type(state).__name__})")
    return state


def source_state(ck: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a foreign checkpoint (`state_dict`, or the file itself)."""
    state = ck.get("state_dict", ck)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no state_dict")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict.{bad[0]} is not a tensor")
    return state


def convert_checkpoint(
    path: str | Path,
    config: str | Path,
    out: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    categories: str | Path | None = None,
    lossy: bool = False,
) -> Report:
    """Convert `path` for the model of `config` (+ dotted `overrides`; the settings that make
    tailseg infer as the source does, e.g. `model.roi.mask_merge`, are added unless given) and
    write `out` and, beside it, the resolved config (`config_path`); the report says what
    became of every key. Class names stored in the source
    (mmdetection's `meta.dataset_meta.classes`) must equal those of `categories` (an annotation
    json) where both exist. `lossy`: see `mmdet.convert_mmdet`."""
    from tailseg.convert import mmdet

    path, out = Path(path), Path(out)
    ck = load_foreign(path)
    state = source_state(ck, path)
    meta = ck.get("meta")
    text = meta.get("cfg") if isinstance(meta, dict) else None
    if isinstance(text, str) and "NormedConv2d" in text:  # same keys as a Conv2d: only said here
        raise ConversionError(
            f"{path}: meta.cfg: NormedConv2d mask logits (inputs normalised per pixel) are not "
            "supported by tailseg's mask heads"
        )
    try:
        version = meta.get("mmdet_version") if isinstance(meta, dict) else None
        implied_settings = mmdet.settings(
            state, lossy, version if isinstance(version, str) else None
        )
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from None
    given = {o.split("=", 1)[0] for o in overrides}
    implied = [f"{k}={v}" for k, v in implied_settings.items() if k not in given]
    cfg = load_config(str(config), [*implied, *overrides])
    cats, labels = _categories(cfg, _source_classes(ck), categories, path)
    model = build_model(cfg.model, cfg.infer)
    weights, report = mmdet.convert_mmdet(state, cfg, model.state_dict(), str(path), lossy, labels)
    report.notes += [f"config: {o} (as the source infers)" for o in implied]
    model.load_state_dict(weights, strict=True)  # the check fit_model promises
    atomic_write_text(config_path(out), dump(cfg))
    checkpoint.save(
        out,
        {
            "model": weights,
            "config": to_dict(cfg),
            "categories": checkpoint.category_entries(cats),
            "converted_from": report.as_dict(),
        },
    )
    return report


def config_path(out: str | Path) -> Path:
    """The config written beside a converted checkpoint: `tailseg predict <it> --checkpoint
    <out>` builds the model the weights were converted for."""
    return Path(out).with_suffix(".yaml")


def _source_classes(ck: dict[str, Any]) -> list[str] | None:
    meta = ck.get("meta")
    dataset_meta = meta.get("dataset_meta") if isinstance(meta, dict) else None
    classes = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else None
    if isinstance(classes, list | tuple) and all(isinstance(c, str) for c in classes):
        return list(classes)
    return None


def _categories(
    cfg: Config, names: list[str] | None, categories: str | Path | None, path: Path
) -> tuple[list[Category], list[int] | None]:
    """(tailseg's categories in label order, `mmdet.class_order` of the json or None)."""
    n = cfg.model.num_classes
    if categories is not None:
        found = AnnotationFile.load(categories, allow_empty=True)
        if found.num_classes != n:
            raise ConversionError(
                f"{categories}: categories: {found.num_classes}, the model has {n} classes"
            )
        in_file = found.category_ids_as_listed  # mmdetection's label order
        if names is not None and len(names) != len(in_file):
            raise ConversionError(
                f"{path}: meta.dataset_meta.classes: {len(names)} classes, {categories} has "
                f"{len(in_file)} categories"
            )
        for j, (cid, name) in enumerate(zip(in_file, names or [], strict=False)):
            mine = found.category_by_id[cid].name
            if _plain(mine) != _plain(name):
                raise ConversionError(
                    f"{path}: meta.dataset_meta.classes[{j}] is {name!r}, but categories[{j}] "
                    f"of {categories} is category {cid} {mine!r}: the labels differ"
                )
        from tailseg.convert.mmdet import class_order

        return found.categories, class_order(in_file)
    if names is not None and len(names) == n:
        log.warning("%s: no --categories json: category ids 1..%d in the source's order", path, n)
        return [Category(i + 1, name) for i, name in enumerate(names)], None
    from tailseg.inference.predict import fallback_categories

    return fallback_categories(cfg, path), None


def _plain(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())
