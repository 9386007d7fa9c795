"""Reader for LVIS v0.5/v1 and COCO instance json, with the federated LVIS fields.

`AnnotationFile.load(path)` checks every field it uses and raises `DataError` naming the file,
the list entry and the field (e.g. ``lvis.json: annotations[12] (id 7).category_id: unknown
category id 999``). Annotations users expect to be dropped (a polygon part with fewer than three
points, a zero-area box) are skipped with one logged warning per file.

Category ids map to contiguous labels 0..C-1 in ascending id order (`label_of`, `category_ids`).
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tailseg.data import pieces
from tailseg.data.json_io import parse_json, read_bytes
from tailseg.errors import DataError
from tailseg.structures import masks as mask_ops

log = logging.getLogger("tailseg.data")
Frequency = Literal["r", "c", "f"]


class OutsideRootError(DataError):
    """An image path written in a dataset json that leaves the image root (absolute, `..`)."""


@dataclass(frozen=True, slots=True)
class Category:
    id: int
    name: str
    frequency: Frequency | None = None
    image_count: int | None = None
    instance_count: int | None = None


@dataclass(frozen=True, slots=True)
class ImageInfo:
    id: int
    height: int
    width: int
    file_name: str
    coco_url: str = ""
    neg_category_ids: tuple[int, ...] = ()
    not_exhaustive_category_ids: tuple[int, ...] = ()
    index: int = -1  # position in the file's `images` list (-1: not from a file)


@dataclass(frozen=True, slots=True)
class Annotation:
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h (abs px)
    area: float
    iscrowd: bool
    segmentation: Any  # polygon parts (validated; a float64 array each) or RLE dict, as in the file


INT64 = (-(2**63), 2**63 - 1)  # ids go into int64 columns


class _Checker:
    """Typed field access that raises DataError with file and field path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, msg: str) -> DataError:
        return DataError(f"{self.path}: {where}: {msg}")

    def get(self, obj: dict, key: str, where: str, kind: type | tuple, required: bool = True):
        if key not in obj:
            if required:
                raise self.fail(f"{where}.{key}", "missing field")
            return None
        value = obj[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if not ok:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}", f"expected {names}, got {value!r:.60}")
        return value

    def id(self, obj: dict, key: str, where: str) -> int:
        """An integer id that fits int64."""
        value = self.get(obj, key, where, int)
        if not INT64[0] <= value <= INT64[1]:
            raise self.fail(f"{where}.{key}", f"{value} does not fit a 64-bit integer")
        return value

    def count(self, obj: dict, key: str, where: str) -> int | None:
        """An optional integer >= 0."""
        value = self.get(obj, key, where, int, required=False)
        if value is not None and value < 0:
            raise self.fail(f"{where}.{key}", f"must be >= 0, got {value}")
        return value

    def id_list(self, obj: dict, key: str, where: str, known: dict[int, Any]) -> tuple[int, ...]:
        values = self.get(obj, key, where, list, required=False) or []
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool):
                raise self.fail(f"{where}.{key}", f"expected category ids, got {v!r}")
            if v not in known:
                raise self.fail(f"{where}.{key}", f"unknown category id {v}")
        return tuple(values)


class AnnotationFile:
    """A parsed, validated LVIS/COCO instance annotation file."""

    def __init__(
        self,
        path: Path,
        images: list[ImageInfo],
        categories: list[Category],
        annotations: list[Annotation],
        skipped: list[str],
    ) -> None:
        self.path = path
        self.images = images
        self.category_ids_as_listed = [c.id for c in categories]  # the file's own order
        self.categories = sorted(categories, key=lambda c: c.id)
        self.annotations = annotations
        self.skipped = skipped
        self.category_ids = [c.id for c in self.categories]  # label → category id
        self.label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.category_by_id = {c.id: c for c in self.categories}
        self.image_by_id = {im.id: im for im in images}
        self.anns_by_image: dict[int, list[Annotation]] = defaultdict(list)
        for a in annotations:
            self.anns_by_image[a.image_id].append(a)
        self.is_federated = any(
            im.neg_category_ids or im.not_exhaustive_category_ids for im in images
        )

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @classmethod
    def load(
        cls, path: str | Path, *, allow_empty: bool = False, keep_degenerate: bool = False
    ) -> AnnotationFile:
        """Read and check a json file.

        `keep_degenerate=True` keeps zero-area instances and polygons without three points (as
        empty masks) instead of skipping them: evaluation needs this, because the official tools
        count such ground truth (it can never be matched, so it lowers recall).
        """
        path = Path(path)
        raw = read_bytes(path)
        try:  # the annotations a piece at a time (a fraction of the memory), when plainly fine
            rest, parts = pieces.split_top_level(raw)
            return cls._build(rest, path, allow_empty, keep_degenerate, parts)
        except (pieces.Fallback, DataError):
            pass  # the whole file at once: the reference path and its exact error messages
        data = parse_json(raw, path)
        del raw
        return cls.from_dict(data, path, allow_empty=allow_empty, keep_degenerate=keep_degenerate)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        path: str | Path = "<dict>",
        *,
        allow_empty: bool = False,
        keep_degenerate: bool = False,
    ) -> AnnotationFile:
        return cls._build(data, Path(path), allow_empty, keep_degenerate, None)

    @classmethod
    def _build(
        cls,
        data: Any,
        path: Path,
        allow_empty: bool,
        keep_degenerate: bool,
        parts: Callable[[dict[int, tuple[int, int]]], Iterator[pieces.Piece]] | None,
    ) -> AnnotationFile:
        """From parsed json, or (`parts`) from everything but the annotations, which come as
        pieces of the array."""
        chk = _Checker(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: top level must be an object, got {type(data).__name__}")
        raw_images = chk.get(data, "images", "<root>", list)
        raw_cats = chk.get(data, "categories", "<root>", list)
        if parts is None:
            raw_anns = chk.get(data, "annotations", "<root>", list, required=False) or []
            parts = lambda sizes: iter([pieces.whole(raw_anns, sizes)])  # noqa: E731
        if not raw_images and not allow_empty:
            raise DataError(f"{path}: images: the dataset has no images")
        if not raw_cats:
            raise DataError(f"{path}: categories: the dataset has no categories")

        categories: dict[int, Category] = {}
        for i, c in enumerate(raw_cats):
            where = f"categories[{i}]"
            if not isinstance(c, dict):
                raise chk.fail(where, "expected an object")
            cid = chk.id(c, "id", where)
            if cid in categories:
                raise chk.fail(f"{where}.id", f"duplicate category id {cid}")
            freq = chk.get(c, "frequency", where, str, required=False)
            if freq is not None and freq not in ("r", "c", "f"):
                raise chk.fail(f"{where}.frequency", f"expected 'r', 'c' or 'f', got {freq!r}")
            categories[cid] = Category(
                id=cid,
                name=chk.get(c, "name", where, str),
                frequency=freq,
                image_count=chk.count(c, "image_count", where),
                instance_count=chk.count(c, "instance_count", where),
            )

        images: dict[int, ImageInfo] = {}
        for i, im in enumerate(raw_images):
            where = f"images[{i}]"
            if not isinstance(im, dict):
                raise chk.fail(where, "expected an object")
            iid = chk.id(im, "id", where)
            where = f"images[{i}] (id {iid})"
            if iid in images:
                raise chk.fail(f"{where}.id", f"duplicate image id {iid}")
            h = chk.get(im, "height", where, int)
            w = chk.get(im, "width", where, int)
            if h <= 0 or w <= 0:
                raise chk.fail(f"{where}.height/width", f"must be positive, got {h}x{w}")
            if h * w > mask_ops.MAX_PIXELS:
                raise chk.fail(f"{where}.height/width", f"{h}x{w} is over 2**32 pixels")
            file_name = chk.get(im, "file_name", where, str, required=False) or ""
            coco_url = chk.get(im, "coco_url", where, str, required=False) or ""
            if not file_name and not coco_url:
                raise chk.fail(f"{where}.file_name", "missing field (and no coco_url)")
            images[iid] = ImageInfo(
                id=iid,
                height=h,
                width=w,
                file_name=file_name,
                coco_url=coco_url,
                neg_category_ids=chk.id_list(im, "neg_category_ids", where, categories),
                not_exhaustive_category_ids=chk.id_list(
                    im, "not_exhaustive_category_ids", where, categories
                ),
                index=i,
            )

        annotations: list[Annotation] = []
        skipped: list[str] = []
        seen_ids: set[int] = set()
        compressed: list[tuple[str, str | bytes, int]] = []  # (where, counts, h*w), checked at once
        sizes = {iid: (im.height, im.width) for iid, im in images.items()}
        total = 0
        for piece in parts(sizes):
            for k, (a, clean) in enumerate(zip(piece.anns, piece.clean, strict=True)):
                i = total + k
                ann = _plain(a, images, categories, seen_ids, clean) or _parse_annotation(
                    chk, i, piece.original(k), images, categories, seen_ids, skipped,
                    keep_degenerate, clean,
                )  # fmt: skip
                if ann is None:
                    continue
                annotations.append(ann)
                if isinstance(ann.segmentation, dict) and not isinstance(
                    ann.segmentation["counts"], list
                ):
                    im = images[ann.image_id]
                    where = f"annotations[{i}] (id {ann.id}).segmentation.counts"
                    compressed.append((where, ann.segmentation["counts"], im.height * im.width))
            total += len(piece.anns)
        bad, problem = mask_ops.check_rle_strings(
            [c for _, c, _ in compressed], [n for _, _, n in compressed]
        )
        if bad >= 0:
            raise chk.fail(compressed[bad][0], problem)
        if skipped:
            log.warning(
                "%s: skipped %d of %d annotations (first: %s)",
                path,
                len(skipped),
                total,
                skipped[0],
            )
        return cls(path, list(images.values()), list(categories.values()), annotations, skipped)

    # ------------------------------------------------------------------ masks
    def rle(self, ann: Annotation) -> mask_ops.RLE:
        im = self.image_by_id[ann.image_id]
        if isinstance(ann.segmentation, list):  # polygon parts, checked when read
            return mask_ops.polygons_to_rle(ann.segmentation, im.height, im.width)
        try:
            return mask_ops.to_rle(ann.segmentation, im.height, im.width)
        except mask_ops.SegmentationError as e:
            raise DataError(f"{self.path}: annotation id {ann.id}: {e}") from None

    def mask(self, ann: Annotation) -> np.ndarray:
        """Bitmap (H, W) bool of one annotation at its image's size."""
        return mask_ops.decode(self.rle(ann))

    # ------------------------------------------------------------------ image files
    def image_path(
        self, image: ImageInfo, root: str | Path, *, allow_outside_root: bool = False
    ) -> Path:
        """`resolve_image_path` of one of this file's images."""
        return resolve_image_path(self.path, image, root, allow_outside_root=allow_outside_root)


def _plain(
    a: dict,
    images: dict[int, ImageInfo],
    categories: dict[int, Category],
    seen_ids: set[int],
    clean_parts: list[np.ndarray] | None,
) -> Annotation | None:
    """The annotation if every field is plainly fine — polygons known clean, int ids that are
    new and known, a finite box and area > 0 — else None, for `_parse_annotation` to check and
    word the problem. The same result as `_parse_annotation` where both give one."""
    if clean_parts is None:
        return None
    aid, image_id, cat = a.get("id"), a.get("image_id"), a.get("category_id")
    bbox, area, iscrowd = a.get("bbox"), a.get("area"), a.get("iscrowd", 0)
    if not (type(aid) is int and type(image_id) is int and type(cat) is int):
        return None
    if aid in seen_ids or image_id not in images or cat not in categories:
        return None
    if type(bbox) is not list or len(bbox) != 4 or type(iscrowd) is not int:
        return None
    if area is not None and not (type(area) is float or type(area) is int):
        return None
    try:
        numbers = [float(v) for v in bbox if type(v) is float or type(v) is int]
        area = float(area) if area is not None else None
    except OverflowError:
        return None
    if len(numbers) != 4 or not INT64[0] <= aid <= INT64[1]:
        return None
    if not (math.isfinite(sum(numbers)) and numbers[2] > 0 and numbers[3] > 0):
        return None
    if area is not None and not (math.isfinite(area) and area > 0):
        return None
    seen_ids.add(aid)
    return Annotation(
        id=aid,
        image_id=image_id,
        category_id=cat,
        bbox=(numbers[0], numbers[1], numbers[2], numbers[3]),
        area=area if area is not None else numbers[2] * numbers[3],
        iscrowd=bool(iscrowd),
        segmentation=clean_parts,
    )


def _parse_annotation(
    chk: _Checker,
    i: int,
    a: Any,
    images: dict[int, ImageInfo],
    categories: dict[int, Category],
    seen_ids: set[int],
    skipped: list[str],
    keep_degenerate: bool,
    clean_parts: list[np.ndarray] | None = None,
) -> Annotation | None:
    """One checked annotation (None if skipped). `clean_parts`: its polygon parts when already
    known to pass `clean_polygons` unchanged (`pieces.plainly_valid_polygons`)."""
    where = f"annotations[{i}]"
    if not isinstance(a, dict):
        raise chk.fail(where, "expected an object")
    aid = chk.id(a, "id", where)
    where = f"annotations[{i}] (id {aid})"
    if aid in seen_ids:
        raise chk.fail(f"{where}.id", f"duplicate annotation id {aid}")
    seen_ids.add(aid)
    image_id = chk.get(a, "image_id", where, int)
    if image_id not in images:
        raise chk.fail(f"{where}.image_id", f"unknown image id {image_id}")
    category_id = chk.get(a, "category_id", where, int)
    if category_id not in categories:
        raise chk.fail(f"{where}.category_id", f"unknown category id {category_id}")
    segm = chk.get(a, "segmentation", where, (list, dict))
    im = images[image_id]
    if clean_parts is not None:
        segm = clean_parts
    elif isinstance(segm, list):
        try:
            parts, dropped = mask_ops.clean_polygons(segm, im.height, im.width)
        except mask_ops.SegmentationError as e:
            raise chk.fail(f"{where}.{e.field}", e.problem) from None
        if not parts and not keep_degenerate:
            skipped.append(f"{where}: degenerate polygon ({'; '.join(dropped) or 'no parts'})")
            return None
        segm = [np.array(p, dtype=np.float64) for p in parts]
    bbox = chk.get(a, "bbox", where, list)
    if len(bbox) != 4 or not all(_finite(v) for v in bbox):
        raise chk.fail(f"{where}.bbox", f"expected [x, y, w, h] (finite numbers), got {bbox!r:.60}")
    area = chk.get(a, "area", where, (int, float), required=False)
    if area is not None and not _finite(area):
        raise chk.fail(f"{where}.area", f"expected a finite number, got {area!r:.30}")
    zero = bbox[2] <= 0 or bbox[3] <= 0 or (area is not None and area <= 0)
    if zero and not keep_degenerate:
        skipped.append(f"{where}: zero-area instance (bbox {bbox}, area {area})")
        return None
    iscrowd = chk.get(a, "iscrowd", where, int, required=False) or 0
    if isinstance(segm, dict):
        size = segm.get("size")
        if size != [im.height, im.width]:
            raise chk.fail(
                f"{where}.segmentation.size",
                f"{size!r:.40} differs from image {image_id}'s size [{im.height}, {im.width}]",
            )
        try:
            mask_ops.check_rle(
                segm, im.height, im.width
            )  # compressed counts: checked by the caller
        except mask_ops.SegmentationError as e:
            raise chk.fail(f"{where}.{e.field}", e.problem) from None
    return Annotation(
        id=aid,
        image_id=image_id,
        category_id=category_id,
        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
        area=float(area) if area is not None else float(bbox[2]) * float(bbox[3]),
        iscrowd=bool(iscrowd),
        segmentation=segm,
    )


def _finite(v: Any) -> bool:
    """A JSON number (not a bool) that is finite."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def resolve_image_path(
    json_path: Path, image: ImageInfo, root: str | Path, *, allow_outside_root: bool = False
) -> Path:
    """Locate an image file under `root`: `file_name`, its COCO-2017 name, or `coco_url`'s tail.

    LVIS v1 has only `coco_url` (…/train2017/000000391895.jpg); LVIS v0.5 names files
    `COCO_val2014_000000266409.jpg` whose 2017 copy is `000000266409.jpg`.

    The one place image paths of a dataset are resolved (training, evaluation, prediction).
    A json path that leaves `root` — absolute, or through `..` — raises OutsideRootError
    naming the json entry, unless `allow_outside_root` (config `data.allow_outside_root`).
    The check is on the written path: symlinks under the root are the user's own layout
    (e.g. `images/train2017 -> /mnt/coco/train2017`) and are followed.
    """
    root = Path(root)
    where = f"images[{image.index}] (id {image.id})" if image.index >= 0 else f"image id {image.id}"
    candidates: list[tuple[Path, str]] = []
    if image.file_name:
        candidates.append((root / image.file_name, "file_name"))
        if image.file_name.startswith("COCO_"):
            candidates.append((root / image.file_name[-16:], "file_name"))
    if image.coco_url:
        *_, split_dir, name = ["", *image.coco_url.rstrip("/").split("/")]
        candidates += [(root / split_dir / name, "coco_url"), (root / name, "coco_url")]
    if not allow_outside_root:
        top = os.path.normpath(root)
        for c, field in candidates:
            lexical = os.path.normpath(c)
            if os.path.commonpath([top, lexical]) != top:
                value = image.file_name if field == "file_name" else image.coco_url
                raise OutsideRootError(
                    f"{json_path}: {where}.{field}: {value!r} leads to {lexical}, outside "
                    f"the image root {root} (set data.allow_outside_root=true to allow it)"
                )
    for c, _ in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c, _ in candidates)
    raise DataError(f"{json_path}: image id {image.id}: image file not found (tried {tried})")
