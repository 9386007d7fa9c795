"""Datasets: LVIS/COCO json, the synthetic benchmark, statistics."""

from tailseg.data.annotations import AnnotationFile, DataError
from tailseg.data.dataset import InstanceDataset, collate

__all__ = ["AnnotationFile", "DataError", "InstanceDataset", "collate"]
