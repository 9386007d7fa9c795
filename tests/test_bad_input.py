"""Bad dataset input gets an error naming the file and the field, or a logged skip."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from tailseg.data import AnnotationFile, DataError, InstanceDataset

SQUARE = [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]]
GOOD = {
    "images": [
        {
            "id": 1,
            "file_name": "a.jpg",
            "height": 8,
            "width": 10,
            "neg_category_ids": [2],
            "not_exhaustive_category_ids": [],
        }
    ],
    "categories": [
        {"id": 1, "name": "cat", "frequency": "f"},
        {"id": 2, "name": "dog", "frequency": "r"},
    ],
    "annotations": [
        {
            "id": 5,
            "image_id": 1,
            "category_id": 1,
            "segmentation": SQUARE,
            "bbox": [1, 1, 5, 5],
            "area": 25,
        }
    ],
}


def write(tmp_path: Path, data: object, name: str = "gt.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def edited(**changes: object) -> dict:
    """GOOD with `section__index__field=value` edits."""
    data = copy.deepcopy(GOOD)
    for key, value in changes.items():
        section, index, field = key.split("__")
        data[section][int(index)][field] = value
    return data


def test_good_file_loads(tmp_path: Path) -> None:
    ann = AnnotationFile.load(write(tmp_path, GOOD))
    assert len(ann.annotations) == 1 and ann.mask(ann.annotations[0]).sum() == 25


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text('{"images": [1, 2,')
    with pytest.raises(DataError, match=rf"{path}: malformed JSON at line 1 column \d+"):
        AnnotationFile.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json: file not found"):
        AnnotationFile.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"categories": []}, r"<root>\.images: missing field"),
        ({**GOOD, "images": []}, r"images: the dataset has no images"),
        ({**GOOD, "categories": []}, r"categories: the dataset has no categories"),
        (
            edited(annotations__0__category_id=999),
            r"annotations\[0\] \(id 5\)\.category_id: unknown category id 999",
        ),
        (
            edited(annotations__0__image_id=3),
            r"annotations\[0\] \(id 5\)\.image_id: unknown image id 3",
        ),
        (
            edited(images__0__neg_category_ids=[7]),
            r"images\[0\] \(id 1\)\.neg_category_ids: unknown category id 7",
        ),
        (edited(images__0__height="8"), r"images\[0\] \(id 1\)\.height: expected int"),
        (edited(images__0__width=0), r"images\[0\] \(id 1\)\.height/width: must be positive"),
        (edited(categories__1__id=1), r"categories\[1\]\.id: duplicate category id 1"),
        (edited(categories__0__frequency="x"), r"categories\[0\]\.frequency: expected 'r'"),
        (
            edited(annotations__0__segmentation=[[1, 2, 3]]),
            r"annotations\[0\] \(id 5\)\.segmentation\[0\]: polygon has an odd number",
        ),
        (edited(annotations__0__bbox=[1, 2]), r"annotations\[0\] \(id 5\)\.bbox: expected"),
        (
            edited(annotations__0__segmentation={"size": [4, 4], "counts": "abc"}),
            r"segmentation\.size: \[4, 4\] differs from image 1's size \[8, 10\]",
        ),
        (
            {**GOOD, "annotations": [GOOD["annotations"][0]] * 2},
            r"annotations\[1\] \(id 5\)\.id: duplicate annotation id 5",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10], "counts": "\x01\x02garbage"}),
            r"annotations\[0\] \(id 5\)\.segmentation\.counts: character outside the RLE",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10], "counts": "ünï"}),
            r"annotations\[0\] \(id 5\)\.segmentation\.counts: not ASCII",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10], "counts": "0"}),
            r"\.segmentation\.counts: run lengths sum to 0, not h\*w=80",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10], "counts": [70]}),
            r"\.segmentation\.counts: run lengths sum to 70, not h\*w=80",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10], "counts": [40, "x", 40]}),
            r"\.segmentation\.counts: run lengths must be integers >= 0",
        ),
        (
            edited(annotations__0__segmentation={"size": [8, 10]}),
            r"\.segmentation\.counts: missing field",
        ),
        (
            edited(annotations__0__segmentation=[[1, 1, 6, 1, 1e9, 6]]),
            r"\.segmentation\[0\]: point \(1e\+09, 6\) lies far outside the 10x8 image",
        ),
        (
            edited(
                images__0__height=1,
                images__0__width=2**31,
                annotations__0__segmentation=[[0, 0, 2e9, 0, 2e9, 1]],
            ),
            r"\.segmentation\[0\]: outline is 4,000,000,001 pixels long \(at most 1,048,576\)",
        ),
        (edited(annotations__0__bbox=[1, 1, True, 5]), r"\(id 5\)\.bbox: expected \[x, y, w, h\]"),
        (edited(annotations__0__id=2**63), r"annotations\[0\]\.id: \d+ does not fit"),
        (edited(images__0__height=2**20, images__0__width=2**20), r"over 2\*\*32 pixels"),
        (edited(categories__0__image_count=-1), r"categories\[0\]\.image_count: must be >= 0"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, data: dict, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(DataError, match=message) as e:
        AnnotationFile.load(path)
    assert str(e.value).startswith(str(path))


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("bbox", r"\(id 5\)\.bbox: expected \[x, y, w, h\] \(finite"),
        ("area", r"\.area: expected a finite"),
    ],
)
def test_nan_in_json_names_the_field(tmp_path: Path, field: str, message: str) -> None:
    """orjson refuses NaN; the reader still names the field that holds it."""
    data = copy.deepcopy(GOOD)
    data["annotations"][0][field] = [1, 1, float("nan"), 5] if field == "bbox" else float("nan")
    path = write(tmp_path, data)
    assert "NaN" in path.read_text()
    with pytest.raises(DataError, match=message) as e:
        AnnotationFile.load(path)
    assert str(e.value).startswith(f"{path}: annotations[0] (id 5).{field}")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"segmentation": [[1.0, 1.0, 6.0, 6.0]]}, "degenerate polygon"),
        ({"bbox": [1, 1, 0, 5]}, "zero-area instance"),
        ({"area": 0}, "zero-area instance"),
    ],
)
def test_degenerate_instances_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict, reason: str
) -> None:
    data = copy.deepcopy(GOOD)
    data["annotations"].append({**data["annotations"][0], "id": 6, **change})
    with caplog.at_level(logging.WARNING, logger="tailseg.data"):
        ann = AnnotationFile.load(write(tmp_path, data))
    assert [a.id for a in ann.annotations] == [5]
    assert "skipped 1 of 2 annotations" in caplog.text and reason in caplog.text
    assert "annotations[1] (id 6)" in caplog.text


def test_short_polygon_part_is_dropped_but_the_rest_kept(tmp_path: Path) -> None:
    data = edited(annotations__0__segmentation=[*SQUARE, [0.0, 0.0, 2.0, 2.0]])
    ann = AnnotationFile.load(write(tmp_path, data))
    assert [p.tolist() for p in ann.annotations[0].segmentation] == SQUARE  # float64 arrays


def test_missing_image_file_names_image_id_and_paths(tmp_path: Path) -> None:
    ds = InstanceDataset(AnnotationFile.load(write(tmp_path, GOOD)), tmp_path)
    with pytest.raises(DataError, match=r"image id 1: image file not found \(tried .*a\.jpg\)"):
        ds[0]


def test_image_size_mismatch_is_reported(tmp_path: Path) -> None:
    Image.new("RGB", (7, 8)).save(tmp_path / "a.jpg")
    ds = InstanceDataset(AnnotationFile.load(write(tmp_path, GOOD)), tmp_path)
    with pytest.raises(DataError, match=r"a\.jpg: image is 8x7 but its json height/width say 8x10"):
        ds[0]


def test_corrupt_image_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    ds = InstanceDataset(AnnotationFile.load(write(tmp_path, GOOD)), tmp_path)
    with pytest.raises(DataError, match=r"a\.jpg: cannot read image \(image id 1"):
        ds[0]


def test_dataset_without_annotated_images_is_an_error(tmp_path: Path) -> None:
    ann = AnnotationFile.load(write(tmp_path, {**GOOD, "annotations": []}))
    with pytest.raises(DataError, match="no images with annotations"):
        InstanceDataset(ann, tmp_path, only_annotated=True)


def test_evaluation_mode_keeps_degenerate_instances_as_empty_masks(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["annotations"].append(
        {
            **data["annotations"][0],
            "id": 6,
            "bbox": [0, 0, 0, 0],
            "area": 0,
            "segmentation": [[1.0, 1.0, 2.0, 2.0]],
        }
    )
    ann = AnnotationFile.load(write(tmp_path, data), keep_degenerate=True)
    assert [a.id for a in ann.annotations] == [5, 6] and not ann.skipped
    assert ann.mask(ann.annotations[1]).sum() == 0
