"""Data structures shared by data, models and evaluation.

`Targets` (torch) is imported on first use; `tailseg.structures.masks` needs only NumPy.
"""

from typing import Any

__all__ = ["Targets"]


def __getattr__(name: str) -> Any:
    if name == "Targets":
        from tailseg.structures.targets import Targets

        return Targets
    raise AttributeError(f"module 'tailseg.structures' has no attribute {name!r}")
