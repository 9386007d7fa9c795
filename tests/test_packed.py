"""The packed annotation columns: the same values as the `AnnotationFile` they come from, and
no per-annotation Python objects for DataLoader workers to copy."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from tailseg.data import AnnotationFile, InstanceDataset
from tailseg.data.packed import PackedAnnotations, Ragged
from tailseg.data.sampling import category_repeat_factors, repeat_factors


def assert_same(packed: PackedAnnotations, ann: AnnotationFile, images: list) -> None:
    assert len(packed) == len(images)
    for row, im in enumerate(images):
        assert packed.image(row) == im
        inst = packed.instances(row)
        anns = ann.anns_by_image.get(im.id, [])
        assert inst.ids.tolist() == [a.id for a in anns]
        assert inst.category_ids.tolist() == [a.category_id for a in anns]
        assert inst.labels.tolist() == [ann.label_of[a.category_id] for a in anns]
        assert inst.boxes.reshape(-1, 4).tolist() == [list(a.bbox) for a in anns]
        assert inst.iscrowd.tolist() == [a.iscrowd for a in anns]
        for j, a in enumerate(anns):
            assert np.array_equal(packed.mask(row, j), ann.mask(a)), (im.id, a.id)


@pytest.mark.parametrize("name", ["coco43", "lvis_val100"])
def test_columns_equal_the_file(name: str, coco43_json: Path, lvis_val100_json: Path) -> None:
    ann = AnnotationFile.load(coco43_json if name == "coco43" else lvis_val100_json)
    assert_same(PackedAnnotations(ann), ann, ann.images)
    subset = ann.images[::-3]  # another order, some images left out
    assert_same(PackedAnnotations(ann, subset), ann, subset)


def rle_and_degenerate_file(tmp_path: Path) -> Path:
    """Every kind of segmentation: multi-part polygon, compressed RLE as str, uncompressed RLE,
    a degenerate polygon (kept as an empty mask with keep_degenerate), an image without any."""
    square = np.zeros((6, 8), dtype=np.uint8, order="F")
    square[1:4, 2:7] = 1
    compressed = mask_utils.encode(square)
    uncompressed = {"size": [6, 8], "counts": [9, 3, 3, 3, 3, 3, 24]}
    anns = [
        {"segmentation": [[0, 0, 3, 0, 3, 3], [5, 5, 7, 5, 7, 2, 6, 1]], "iscrowd": 0},
        {"segmentation": {"size": [6, 8], "counts": compressed["counts"].decode()}, "iscrowd": 1},
        {"segmentation": uncompressed, "iscrowd": 1},
        {"segmentation": [[1, 1, 2, 2]], "iscrowd": 0},  # two points: degenerate
    ]
    for k, a in enumerate(anns):
        a.update(id=10 + k, image_id=7, category_id=3 if k % 2 else 5, bbox=[1, 1, 2, 2], area=4)
    data = {
        "images": [
            {"id": 4, "height": 5, "width": 5, "file_name": "a.jpg", "neg_category_ids": [3]},
            {"id": 7, "height": 6, "width": 8, "coco_url": "http://x/val2017/b.jpg"},
        ],
        "categories": [{"id": 5, "name": "five"}, {"id": 3, "name": "three"}],
        "annotations": anns,
    }
    path = tmp_path / "kinds.json"
    path.write_text(json.dumps(data))
    return path


def test_every_segmentation_kind(tmp_path: Path) -> None:
    ann = AnnotationFile.load(rle_and_degenerate_file(tmp_path), keep_degenerate=True)
    packed = PackedAnnotations(ann)
    assert_same(packed, ann, ann.images)
    assert packed.instances(0).ids.shape == (0,)  # image 4 has none
    assert packed.instances(1).labels.tolist() == [1, 0, 1, 0]  # id 3 → label 0, id 5 → 1
    assert packed.mask(1, 3).sum() == 0  # the degenerate polygon: an empty mask
    assert packed.mask(1, 1).sum() == 15 and packed.mask(1, 2).sum() == 9
    (tmp_path / "val2017").mkdir()
    (tmp_path / "val2017" / "b.jpg").touch()
    assert packed.image_path(1, tmp_path) == ann.image_path(ann.images[1], tmp_path)
    assert packed.image_path(1, tmp_path) == tmp_path / "val2017" / "b.jpg"


def test_dataset_items_drop_only_empty_masks(tmp_path: Path) -> None:
    path = rle_and_degenerate_file(tmp_path)
    ds = InstanceDataset(AnnotationFile.load(path, keep_degenerate=True), tmp_path)
    t = ds.targets(1)
    assert t.labels.tolist() == [1, 0, 1] and t.iscrowd.tolist() == [False, True, True]
    assert t.boxes.tolist() == [[1, 1, 3, 3]] * 3 and t.masks.shape == (3, 6, 8)
    assert ds.targets(0).neg_labels.tolist() == [0] and len(ds.targets(0)) == 0
    t.labels[0] = 99  # a copy: the shared columns stay as they are
    assert ds.targets(1).labels.tolist() == [1, 0, 1]


def test_repeat_factors_of_packed_equal_the_files(lvis_val100_json: Path) -> None:
    ann = AnnotationFile.load(lvis_val100_json)
    images = [im for im in ann.images if ann.anns_by_image[im.id]][::2]
    packed = PackedAnnotations(ann, images)
    for t in (0.001, 0.1):
        assert category_repeat_factors(packed, t) == category_repeat_factors(ann, t, images)
        assert repeat_factors(packed, t).tolist() == repeat_factors(ann, t, images).tolist()
    with pytest.raises(ValueError, match="images=None"):
        repeat_factors(packed, 0.1, images)


def test_ragged_rows() -> None:
    r = Ragged.from_rows([[1, 2], [], [3]], np.int64)
    assert [r[i].tolist() for i in range(len(r))] == [[1, 2], [], [3]]
    s = Ragged.from_rows(["é".encode(), b"", b"ab"], bytes)
    assert [s.text(i) for i in range(3)] == ["é", "", "ab"]
    assert Ragged.from_rows([[], []], np.float64).values.shape == (0,)


def python_objects(root: object) -> int:
    """Python objects reachable from `root` (NumPy arrays count as one, their data as none)."""
    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray | type):
            continue
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_dataset_holds_no_object_per_annotation(tmp_path: Path) -> None:
    """What a forked worker would copy by reading it: the same number of Python objects for 10
    and for 1,000 annotations (an object per annotation would add ≥ 990)."""

    def dataset(n: int) -> InstanceDataset:
        anns = [
            {"id": k + 1, "image_id": 1 + k % 5, "category_id": 1 + k % 2, "bbox": [0, 0, 2, 2],
             "area": 2.0, "segmentation": [[0, 0, 2, 0, 2, 2]]}
            for k in range(n)
        ]  # fmt: skip
        images = [{"id": i, "height": 9, "width": 9, "file_name": f"{i}.jpg"} for i in range(1, 6)]
        cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        data = {"images": images, "categories": cats, "annotations": anns}
        return InstanceDataset(AnnotationFile.from_dict(data), tmp_path)

    small, large = dataset(10), dataset(1000)
    assert len(large.ann.ids) == 1000
    assert python_objects(large) == python_objects(small)
