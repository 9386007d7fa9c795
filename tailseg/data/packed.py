"""A dataset's annotations as NumPy columns, so that DataLoader workers share them.

A forked worker that reads a Python object (an `Annotation`, its tuple of a box, its polygon
arrays) writes the object's reference count, and the page holding it is copied into the worker
("copy on read"): over LVIS v1 train's 1.27 M instances each worker ends up with a private copy
of most of the dataset (detectron2 serialises its records into one NumPy buffer for this reason).
Here every per-image and per-instance field is a slice of a few flat NumPy arrays, which a worker
reads without writing a byte of them; building the columns lets the `AnnotationFile` go.

`PackedAnnotations(ann, images)` keeps `images` (default: all of the file's) in that order, as
rows 0..N-1; `instances(row)` gives the row's annotations in file order with the values the
file's `Annotation`s hold, and `mask(row, j)` the same bitmap as `AnnotationFile.mask`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailseg.data.annotations import AnnotationFile, Category, ImageInfo, resolve_image_path
from tailseg.structures import masks as mask_ops


class Ragged:
    """Rows of different lengths: row i is `values[offsets[i]:offsets[i + 1]]` (a view)."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values
        self.offsets = offsets  # (rows + 1,) int64

    @classmethod
    def from_rows(cls, rows: Sequence[Any], dtype: Any) -> Ragged:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if dtype is bytes:  # strings as one uint8 buffer
            values = np.frombuffer(b"".join(rows), dtype=np.uint8).copy()
        elif offsets[-1] > 0:
            values = np.concatenate([np.asarray(r, dtype=dtype) for r in rows if len(r)])
        else:
            values = np.empty(0, dtype=dtype)
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def text(self, i: int) -> str:
        return self[i].tobytes().decode("utf-8")

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.offsets.nbytes


@dataclass(frozen=True, slots=True)
class ImageInstances:
    """One image's annotations, in file order (M of them)."""

    ids: np.ndarray  # (M,) int64 annotation ids
    category_ids: np.ndarray  # (M,) int64
    labels: np.ndarray  # (M,) int64 contiguous labels
    boxes: np.ndarray  # (M, 4) float64 x, y, w, h abs px, as in the file
    iscrowd: np.ndarray  # (M,) bool


class PackedAnnotations:
    """The columns of an `AnnotationFile`'s images and their annotations (see the module)."""

    def __init__(self, ann: AnnotationFile, images: Sequence[ImageInfo] | None = None) -> None:
        images = ann.images if images is None else images
        self.path: Path = ann.path
        self.categories: list[Category] = ann.categories
        self.category_ids: list[int] = ann.category_ids
        self.label_of: dict[int, int] = ann.label_of
        n = len(images)
        self.image_ids = np.fromiter((im.id for im in images), np.int64, n)
        self.sizes = np.array([(im.height, im.width) for im in images], np.int64).reshape(n, 2)
        self.file_index = np.fromiter((im.index for im in images), np.int64, n)
        self.file_names = Ragged.from_rows([im.file_name.encode() for im in images], bytes)
        self.coco_urls = Ragged.from_rows([im.coco_url.encode() for im in images], bytes)
        self.neg_category_ids = Ragged.from_rows([im.neg_category_ids for im in images], np.int64)
        self.not_exhaustive_category_ids = Ragged.from_rows(
            [im.not_exhaustive_category_ids for im in images], np.int64
        )

        anns = [a for im in images for a in ann.anns_by_image.get(im.id, ())]
        counts = [len(ann.anns_by_image.get(im.id, ())) for im in images]
        self.first = np.zeros(n + 1, dtype=np.int64)  # row i: annotations first[i]:first[i+1]
        np.cumsum(np.array(counts, dtype=np.int64), out=self.first[1:])
        m = len(anns)
        self.ids = np.fromiter((a.id for a in anns), np.int64, m)
        self.ann_category_ids = np.fromiter((a.category_id for a in anns), np.int64, m)
        lookup = ann.label_of
        self.labels = np.fromiter((lookup[a.category_id] for a in anns), np.int64, m)
        self.boxes = np.array([a.bbox for a in anns], dtype=np.float64).reshape(m, 4)
        self.iscrowd = np.fromiter((a.iscrowd for a in anns), bool, m)
        # segmentations: polygon parts (float64 coordinates) or one compressed RLE string
        polygons = [a.segmentation if isinstance(a.segmentation, list) else [] for a in anns]
        self.first_part = np.zeros(m + 1, dtype=np.int64)  # annotation k: parts first_part[k]:…
        np.cumsum(np.array([len(ps) for ps in polygons], np.int64), out=self.first_part[1:])
        self.coords = Ragged.from_rows([p for ps in polygons for p in ps], np.float64)  # x, y, …
        rle_of = [k for k, a in enumerate(anns) if isinstance(a.segmentation, dict)]
        self.rle_row = np.full(m, -1, dtype=np.int64)  # annotation → its row in `rles`, or -1
        self.rle_row[rle_of] = np.arange(len(rle_of))
        heights = {im.id: (im.height, im.width) for im in images}
        self.rles = Ragged.from_rows(
            [
                mask_ops.to_rle(anns[k].segmentation, *heights[anns[k].image_id])["counts"]
                for k in rle_of
            ],
            bytes,
        )

    # ------------------------------------------------------------------ images
    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def image(self, row: int) -> ImageInfo:
        """The row's image as the file's `ImageInfo` (made on demand)."""
        h, w = self.sizes[row]
        return ImageInfo(
            id=int(self.image_ids[row]),
            height=int(h),
            width=int(w),
            file_name=self.file_names.text(row),
            coco_url=self.coco_urls.text(row),
            neg_category_ids=tuple(self.neg_category_ids[row].tolist()),
            not_exhaustive_category_ids=tuple(self.not_exhaustive_category_ids[row].tolist()),
            index=int(self.file_index[row]),
        )

    def image_path(self, row: int, root: str | Path, *, allow_outside_root: bool = False) -> Path:
        """`AnnotationFile.image_path` of the row's image."""
        return resolve_image_path(
            self.path, self.image(row), root, allow_outside_root=allow_outside_root
        )

    # ------------------------------------------------------------------ annotations
    def instances(self, row: int) -> ImageInstances:
        s = slice(self.first[row], self.first[row + 1])
        return ImageInstances(
            self.ids[s], self.ann_category_ids[s], self.labels[s], self.boxes[s], self.iscrowd[s]
        )

    def rle(self, row: int, j: int) -> mask_ops.RLE:
        """Compressed RLE of the row's j-th annotation at its image's size."""
        k = int(self.first[row]) + j
        h, w = (int(v) for v in self.sizes[row])
        r = int(self.rle_row[k])
        if r >= 0:
            return {"size": [h, w], "counts": self.rles[r].tobytes()}
        return mask_ops.polygons_to_rle(self.polygon(row, j), h, w)

    def polygon(self, row: int, j: int) -> list[np.ndarray]:
        """The row's j-th annotation's polygon parts, (2K,) float64 x, y, … each (views); none
        for an RLE."""
        k = int(self.first[row]) + j
        return [self.coords[p] for p in range(self.first_part[k], self.first_part[k + 1])]

    def mask(self, row: int, j: int) -> np.ndarray:
        """Bitmap (H, W) bool of the row's j-th annotation."""
        return mask_ops.decode(self.rle(row, j))

    def category_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows (K,), category ids (K,)) int64: each image with each category it has a
        non-crowd instance of, once, sorted by row then category id."""
        rows = np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.first))
        keep = ~self.iscrowd
        pairs = np.unique(np.stack([rows[keep], self.ann_category_ids[keep]], axis=1), axis=0)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    @property
    def nbytes(self) -> int:
        """Bytes held in the columns."""
        arrays = [self.image_ids, self.sizes, self.file_index, self.first, self.ids]
        arrays += [self.ann_category_ids, self.labels, self.boxes, self.iscrowd, self.rle_row]
        arrays += [self.first_part]
        ragged = [self.file_names, self.coco_urls, self.neg_category_ids]
        ragged += [self.not_exhaustive_category_ids, self.coords, self.rles]
        return sum(a.nbytes for a in arrays) + sum(r.nbytes for r in ragged)
