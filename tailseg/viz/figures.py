"""Shared matplotlib setup: headless backend and atomic PNG writes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from tailseg.utils.files import atomic_write_bytes

FREQ_COLORS = {"r": "#d62728", "c": "#ff7f0e", "f": "#1f77b4"}
FREQ_NAMES = {"r": "rare", "c": "common", "f": "frequent"}


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Render `fig` to PNG, write it atomically, close the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
