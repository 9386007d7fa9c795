"""Necks: feature pyramids over backbone levels."""

from tailseg.models.necks.fpn import FPN

__all__ = ["FPN"]
