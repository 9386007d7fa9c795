"""A torch `Dataset` over an LVIS/COCO annotation file: image tensor + typed `Targets`."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from tailseg.data.annotations import AnnotationFile, DataError, ImageInfo
from tailseg.data.packed import PackedAnnotations
from tailseg.structures.targets import Targets

log = logging.getLogger("tailseg.data")


SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}  # 16-bit grayscale (PNG, TIFF)


def rgb_pixels(im: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of a PIL image of any 8-bit mode (1, L, P, PA, LA, RGBA, CMYK, YCbCr, …
    converted by PIL; alpha is dropped) or 16-bit grayscale, scaled 0–65535 → 0–255 (÷ 257,
    rounded). PIL already reads 16-bit colour PNGs as 8-bit RGB(A).

    Raises ValueError for 32-bit integer ('I') and float ('F') pixels, whose range is not
    known (PIL would clip them to 255: a white image).
    """
    if im.mode in SIXTEEN_BIT_MODES:
        gray = np.rint(np.asarray(im, dtype=np.float32) / 257.0).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise ValueError(f"{kind} pixels (mode {im.mode!r}) have no fixed range; save it as 8-bit")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_image(path: Path, expected_hw: tuple[int, int] | None = None, where: str = "") -> Tensor:
    """Read an image as RGB uint8 (3, H, W) (see `rgb_pixels`), EXIF orientation applied.

    Raises DataError naming the file if it is missing, unreadable, of a pixel format without a
    fixed range, or not `expected_hw` in size.
    """
    try:
        with Image.open(path) as im:
            arr = rgb_pixels(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found{where}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read image{where} ({e})") from None
    if expected_hw is not None and arr.shape[:2] != tuple(expected_hw):
        raise DataError(
            f"{path}: image is {arr.shape[0]}x{arr.shape[1]} but its json height/width say "
            f"{expected_hw[0]}x{expected_hw[1]}{where}"
        )
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)


class InstanceDataset(torch.utils.data.Dataset):
    """Images and instance targets of one annotation file.

    The annotations are kept as NumPy columns (`PackedAnnotations`), which DataLoader workers
    share with the main process instead of copying; masks are decoded when an item is read.
    Augmentation is `tailseg.data.transforms.pipeline.AugmentedDataset`'s job.
    """

    def __init__(
        self,
        annotations: AnnotationFile | str | Path,
        image_root: str | Path,
        *,
        only_annotated: bool = False,
        allow_outside_root: bool = False,
    ) -> None:
        file = (
            annotations
            if isinstance(annotations, AnnotationFile)
            else AnnotationFile.load(annotations)
        )
        images = [im for im in file.images if not only_annotated or file.anns_by_image[im.id]]
        if not images:
            raise DataError(f"{file.path}: images: no images with annotations to use")
        self.ann = PackedAnnotations(file, images)
        if not isinstance(annotations, AnnotationFile):  # the file's objects are gone now
            del file, images
            release_freed_memory()
        self.image_root = Path(image_root)
        self.allow_outside_root = allow_outside_root

    def __len__(self) -> int:
        return len(self.ann)

    @property
    def num_classes(self) -> int:
        return self.ann.num_classes

    @property
    def image_ids(self) -> np.ndarray:
        """(N,) int64 image ids, index order."""
        return self.ann.image_ids

    def image_info(self, index: int) -> ImageInfo:
        return self.ann.image(index)

    def image_path(self, index: int) -> Path:
        return self.ann.image_path(
            index, self.image_root, allow_outside_root=self.allow_outside_root
        )

    def load_image(self, index: int) -> Tensor:
        h, w = (int(v) for v in self.ann.sizes[index])
        where = f" (image id {self.ann.image_ids[index]} in {self.ann.path})"
        return read_image(self.image_path(index), (h, w), where)

    def targets(self, index: int) -> Targets:
        """Ground truth of one image at its original size (no pixels read)."""
        im = self.ann.instances(index)
        h, w = (int(v) for v in self.ann.sizes[index])
        masks = np.zeros((len(im.ids), h, w), dtype=bool)
        for j in range(len(im.ids)):
            masks[j] = self.ann.mask(index, j)
        x, y, bw, bh = im.boxes.astype(np.float32).T  # each (M,)
        boxes = np.stack([x, y, x + bw, y + bh], axis=1)  # (M, 4) xyxy
        keep = masks.any(axis=(1, 2))
        if not keep.all():
            log.debug(
                "%s: image %d: dropping empty masks of annotations %s",
                self.ann.path,
                self.ann.image_ids[index],
                im.ids[~keep].tolist(),
            )
        label_of = self.ann.label_of
        to_labels = lambda ids: torch.tensor([label_of[int(c)] for c in ids], dtype=torch.int64)  # noqa: E731
        return Targets(
            boxes=torch.from_numpy(boxes[keep]),
            labels=torch.from_numpy(im.labels[keep]),
            masks=torch.from_numpy(masks[keep]),
            iscrowd=torch.from_numpy(im.iscrowd[keep]),
            image_id=int(self.ann.image_ids[index]),
            image_size=(h, w),
            neg_labels=to_labels(self.ann.neg_category_ids[index]),
            not_exhaustive_labels=to_labels(self.ann.not_exhaustive_category_ids[index]),
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Targets]:
        """(image uint8 (3, H, W), Targets) at the image's original size."""
        return self.load_image(index), self.targets(index)

    def check_images(self, progress: bool = False) -> None:
        """Before any work: every image exists, opens as an image (header only) and has the
        json's size. Raises DataError naming the annotation file, how many images fail, and
        the first few with their `images[...]` entry and problem."""
        problems = []
        for i in tqdm(range(len(self)), desc="checking images", disable=not progress, leave=False):
            im = self.image_info(i)
            try:
                path = self.image_path(i)
            except DataError as e:  # not found under any of its names
                problems.append(str(e).removeprefix(f"{self.ann.path}: "))
                continue
            try:
                with Image.open(path) as f:
                    w, h = f.size
                    if _rotated(f):  # read_image applies the EXIF orientation
                        w, h = h, w
            except FileNotFoundError:
                problems.append(f"image id {im.id}: {path}: not found")
                continue
            except (UnidentifiedImageError, OSError) as e:
                problems.append(f"image id {im.id}: {path}: cannot read ({e})")
                continue
            if (h, w) != (im.height, im.width):
                problems.append(
                    f"image id {im.id}: {path}: is {h}x{w}, json says {im.height}x{im.width}"
                )
        if problems:
            shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            raise DataError(
                f"{self.ann.path}: images: {len(problems)} of {len(self)} images cannot be "
                f"used (under {self.image_root}): {shown}"
            )


def release_freed_memory() -> None:
    """Hand the heap that freed objects held back to the system (glibc's `malloc_trim`; a
    no-op elsewhere): after a large annotation file is packed, most of its memory is free but
    still counted in the process and in every worker it forks."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def _rotated(im: Image.Image) -> bool:
    """Whether the EXIF orientation swaps width and height (orientations 5-8)."""
    return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
