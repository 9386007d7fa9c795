"""Datasets: LVIS/COCO json, the synthetic benchmark, statistics.

`InstanceDataset` (which needs torch) is imported on first use, so that json-only work such as
evaluation starts without loading torch.
"""

from typing import Any

from tailseg.data.annotations import AnnotationFile, DataError

__all__ = ["AnnotationFile", "DataError", "InstanceDataset"]


def __getattr__(name: str) -> Any:
    if name == "InstanceDataset":
        from tailseg.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'tailseg.data' has no attribute {name!r}")
