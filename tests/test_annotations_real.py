"""The reader on real COCO and LVIS files, checked against pycocotools' COCO and lvis-api's LVIS.

Counts come from tests/data/SOURCES.md: coco_sample43 has 43 images, 374 annotations (370
polygons, 30 multi-part, 4 crowd regions as uncompressed RLE), 53 categories present, areas
201 small / 97 medium / 76 large; lvis_val_100 has 100 images, 977 polygon annotations, 190
categories present of 1,230, 942 negative and 16 not-exhaustive labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from tailseg.data import AnnotationFile, InstanceDataset
from tailseg.data.stats import dataset_stats


@pytest.fixture(scope="module")
def coco43(coco43_json) -> AnnotationFile:
    return AnnotationFile.load(coco43_json)


def test_coco43_counts(coco43: AnnotationFile) -> None:
    assert len(coco43.images) == 43
    assert len(coco43.annotations) == 374
    assert sum(a.iscrowd for a in coco43.annotations) == 4
    assert sum(isinstance(a.segmentation, list) for a in coco43.annotations) == 370
    assert (
        sum(
            isinstance(a.segmentation, list) and len(a.segmentation) > 1 for a in coco43.annotations
        )
        == 30
    )
    assert coco43.skipped == []
    s = dataset_stats(coco43)
    assert (s["images"], s["instances"], s["categories"]) == (43, 374, 53)
    assert s["area"] == {"small": 201, "medium": 97, "large": 76}


def test_coco43_labels_are_contiguous_and_invertible(coco43: AnnotationFile) -> None:
    assert coco43.num_classes == 80
    assert [coco43.label_of[c] for c in coco43.category_ids] == list(range(80))
    assert coco43.category_ids == sorted(coco43.category_ids)


def test_coco43_every_mask_equals_pycocotools(coco43_json, coco43: AnnotationFile) -> None:
    ref = COCO(str(coco43_json))
    for ann in coco43.annotations:
        expected = ref.annToMask(ref.anns[ann.id]).astype(bool)
        got = coco43.mask(ann)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), f"annotation {ann.id}"


def test_coco43_dataset_items(coco43_json, coco43_images, coco43: AnnotationFile) -> None:
    ds = InstanceDataset(coco43, coco43_images)
    ref = COCO(str(coco43_json))
    for i in range(len(ds)):
        image, t = ds[i]
        im = ds.image_info(i)
        assert image.dtype == torch.uint8 and image.shape == (3, im.height, im.width)
        anns = ref.loadAnns(ref.getAnnIds(imgIds=[im.id]))
        assert len(t) == len(anns)
        x, y, w, h = np.array([a["bbox"] for a in anns], dtype=np.float32).T
        np.testing.assert_array_equal(t.boxes.numpy(), np.stack([x, y, x + w, y + h], 1))
        assert t.labels.tolist() == [coco43.label_of[a["category_id"]] for a in anns]
        assert t.iscrowd.tolist() == [bool(a["iscrowd"]) for a in anns]
        for m, a in zip(t.masks, anns, strict=True):
            assert torch.equal(m, torch.from_numpy(ref.annToMask(a).astype(bool)))


def test_lvis_val100_matches_lvis_api(lvis_val100_json) -> None:
    from lvis import LVIS

    ours = AnnotationFile.load(lvis_val100_json)
    ref = LVIS(str(lvis_val100_json))
    assert len(ours.annotations) == len(ref.anns) == 977
    assert ours.num_classes == 1230 and ours.is_federated
    for ann in ours.annotations:
        r = ref.anns[ann.id]
        assert np.array_equal(ours.mask(ann), ref.ann_to_mask(r).astype(bool)), ann.id
        assert list(ann.bbox) == r["bbox"] and ann.category_id == r["category_id"]
    for im in ours.images:
        r = ref.imgs[im.id]
        assert list(im.neg_category_ids) == r["neg_category_ids"]
        assert list(im.not_exhaustive_category_ids) == r["not_exhaustive_category_ids"]
    s = dataset_stats(ours)
    assert (s["images"], s["instances"], s["categories"]) == (100, 977, 190)
    assert s["federated"] == {"neg_labels": 942, "not_exhaustive_labels": 16}
    assert {g: s["frequency"][g]["classes"] for g in "rcf"} == {
        g: sum(c["frequency"] == g for c in ref.dataset["categories"]) for g in "rcf"
    }


def test_lvis_federated_fields_become_labels(lvis_val100_json) -> None:
    ann = AnnotationFile.load(lvis_val100_json)
    ds = InstanceDataset(ann, "/nonexistent")  # targets need no pixels
    checked = 0
    for i, im in enumerate(ann.images):  # the dataset keeps the file's order
        t = ds.targets(i)
        assert t.neg_labels.tolist() == [ann.label_of[c] for c in im.neg_category_ids]
        assert t.not_exhaustive_labels.tolist() == [
            ann.label_of[c] for c in im.not_exhaustive_category_ids
        ]
        assert t.masks.shape[1:] == (im.height, im.width)
        checked += bool(im.neg_category_ids) + bool(im.not_exhaustive_category_ids)
    assert checked > 10


def test_lvis_v1_style_image_found_by_coco_url(tmp_path) -> None:
    from PIL import Image

    (tmp_path / "train2017").mkdir()
    Image.new("RGB", (4, 3)).save(tmp_path / "train2017" / "000000000009.jpg")
    data = {
        "images": [
            {
                "id": 9,
                "height": 3,
                "width": 4,
                "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg",
            }
        ],
        "categories": [{"id": 1, "name": "a", "frequency": "r"}],
        "annotations": [],
    }
    ann = AnnotationFile.from_dict(data, "v1.json")
    assert ann.image_path(ann.images[0], tmp_path) == tmp_path / "train2017" / "000000000009.jpg"
    image, targets = InstanceDataset(ann, tmp_path)[0]
    assert image.shape == (3, 3, 4) and len(targets) == 0
