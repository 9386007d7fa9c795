"""Atomic checkpoints, and resuming from the last one that loads.

A checkpoint is written to a temporary file beside its name and renamed over it, so a kill
mid-write leaves the previous file intact. `last.pt` is rotated to `last.prev.pt` before a new
one lands; `load_last_good` tries `last.pt` then `last.prev.pt`, naming any that fails.
`best.pt` and `last.pt` carry the training set's `categories` ([{"id", "name"}] in the model's
label order), which prediction reports.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tailseg.utils.files import atomic_write_bytes

log = logging.getLogger("tailseg.engine")


class CheckpointError(RuntimeError):
    """No usable checkpoint (message names every file tried and why)."""


def category_entries(categories: Iterable[Any]) -> list[dict[str, Any]]:
    """`categories` of a checkpoint: [{"id": int, "name": str}] in label order, from objects with
    `.id` and `.name` (plain values only, so the file loads with `weights_only=True`)."""
    return [{"id": int(c.id), "name": str(c.name)} for c in categories]


def save(path: str | Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    if keep_previous and path.exists():
        os.replace(path, path.with_suffix(".prev.pt"))
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU; a corrupt or foreign file raises CheckpointError naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
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
