"""Data structures shared by data, models and evaluation."""

from tailseg.structures.targets import Targets

__all__ = ["Targets"]
