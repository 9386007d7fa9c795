"""TensorBoard scalars of a run (optional: needs the `tensorboard` package, `pip install
tailseg[tensorboard]`; without it training goes on and says so once).

Every epoch adds its row of `metrics.jsonl` as scalars at step = epoch: the mean losses, the lr
and every evaluation number (mask AP, AP_r/c/f, AP‡ ...), under `RUN_DIR/tensorboard/`, so that
`tensorboard --logdir STUDY_DIR` compares the runs of a whole study.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("tailseg.engine")
SKIP = ("epoch", "iterations")


class ScalarLog:
    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
            log.info("no TensorBoard event files (pip install tensorboard to have them)")
            return
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def epoch(self, row: dict[str, Any]) -> None:
        """One metrics.jsonl row: {"epoch": k, "loss": ..., "segm.AP": ..., ...}."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key in SKIP or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if math.isfinite(value) and value != -1:  # -1: no objects of that group
                self.writer.add_scalar(key.replace(".", "/", 1), value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
