"""Atomic checkpoints, and resuming from the last one that loads.

A checkpoint is written to a temporary file beside its name and renamed over it, so a kill
mid-write leaves the previous file intact. `last.pt` is rotated to `last.prev.pt` before a new
one lands; `load_last_good` tries `last.pt` then `last.prev.pt`, naming any that fails.

A checkpoint holds only tensors and plain data (numbers, strings, lists, tuples, dicts) and is
read with `torch.load(weights_only=True)`: a crafted file whose pickle would import or call
anything else is refused before any of it runs.

`best.pt` and `last.pt` carry the training set's `categories` ([{"id", "name"}] in the model's
label order), which prediction reports.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailseg.errors import CheckpointError
from tailseg.utils.files import atomic_write_bytes

log = logging.getLogger("tailseg.engine")


def _plain(value: Any) -> Any:
    """`value` with NumPy scalars and arrays made Python numbers, lists and tensors, so that
    `weights_only` loading accepts it."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value


def category_entries(categories: Iterable[Any]) -> list[dict[str, Any]]:
    """`categories` of a checkpoint: [{"id": int, "name": str}] in label order, from objects with
    `.id` and `.name` (plain values only, so the file loads with `weights_only=True`)."""
    return [{"id": int(c.id), "name": str(c.name)} for c in categories]


# parts of the model a config key switches on or off, to name in a mismatch
_SWITCHES = (
    (r"mask_iou_head\.", "model.roi.mask_scoring"),
    (r"mask_heads\.(\d+)\.", "model.roi.mask_heads[{}]"),
    (r"backbone\.(?:assistant|lead|links)\.", "model.backbone.composite"),
)


def _which_key(names: list[str]) -> str:
    """The config key behind a set of state-dict names, or the first few names."""
    keys = []
    for pattern, key in _SWITCHES:
        found = {m.groups() for n in names if (m := re.match(pattern, n))}
        keys += [key.format(*g) for g in sorted(found)]
    return ", ".join(keys) or ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def load_weights(model: torch.nn.Module, weights: dict[str, Any], source: str | Path) -> None:
    """Load a checkpoint's `model` weights strictly; a mismatch is one line naming the config
    key behind it (e.g. a checkpoint without Mask Scoring for a model with it)."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{source}: model: expected a dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    parts = []
    if missing:
        parts.append(f"none for {_which_key(missing)} ({len(missing)} tensors, e.g. {missing[0]})")
    if unexpected:
        parts.append(
            f"extra {_which_key(unexpected)} ({len(unexpected)} tensors, e.g. {unexpected[0]})"
        )
    if parts:
        raise CheckpointError(
            f"{source}: weights do not fit the config's model: {'; '.join(parts)}; "
            "trained with another setting?"
        )
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(
            f"{source}: weights do not fit the config's model ({str(e)[:300]})"
        ) from None


def save(path: str | Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    path = Path(path)
    buf = io.BytesIO()
    torch.save(_plain(state), buf)
    if keep_previous and path.exists():
        os.replace(path, path.with_suffix(".prev.pt"))
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU; a corrupt or foreign file raises CheckpointError naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise CheckpointError(f"{path}: corrupt checkpoint (UnpicklingError: {e})") from None
        found = re.search(r"(?:GLOBAL|global:?) ([\w.]+)", str(e))
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors and plain data"
            f" ({found.group(1) if found else 'an unsupported global'}), which loading would"
            " run as code; only load checkpoints written by tailseg"
        ) from None
    except Exception as e:  # truncated zip, bad pickle, ...
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a tailseg checkpoint (no 'model' entry)")
    return state


def load_last_good(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable of last.pt / last.prev.pt (None when neither exists)."""
    run_dir = Path(run_dir)
    problems = []
    for name in ("last.pt", "last.prev.pt"):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            return path, load(path)
        except CheckpointError as e:
            log.warning("%s; trying the previous checkpoint", e)
            problems.append(str(e))
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    return None
