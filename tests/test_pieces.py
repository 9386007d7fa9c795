"""Reading annotation files in pieces gives exactly what reading them whole gives.

`AnnotationFile.load` scans the raw json for the annotations array, parses it a piece at a time
and checks plainly valid polygons in bulk (`tailseg.data.pieces`); `AnnotationFile.from_dict` of
the whole parsed file is the reference. Equal means: the same annotations field for field (the
same polygon coordinates bit for bit), the same skipped list, or the same error message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailseg.data import AnnotationFile, DataError, annotations, json_scan, pieces
from tailseg.data.json_io import read_json
from tests.test_fuzz import fuzz

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- the scanner
def _members(text: bytes, opening: str, batch: int = 2) -> list[bytes] | None:
    buf = np.frombuffer(text, dtype=np.uint8)
    span = json_scan.container(buf, 0, len(buf), ord(opening))
    if span is None:
        return None
    try:
        found = list(json_scan.members(buf, *span, batch=batch))
    except json_scan.Unreadable:
        return None
    return [text[s:e] for st_, en, _ in found for s, e in zip(st_, en, strict=True)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[]", []),
        (b" [ 1 , 2 ,3 ] ", [b"1", b"2", b"3"]),
        (
            b'[{"a": [1, {"b": "]}"}]}, "x,y", [[]]]',
            [b'{"a": [1, {"b": "]}"}]}', b'"x,y"', b"[[]]"],
        ),
        (b'["a\\"]", "\\\\", 7]', [b'"a\\"]"', b'"\\\\"', b"7"]),  # escaped quote, backslash
        (b"[1,]", None),  # trailing comma (also right after a full batch)
        (b"[1,2,]", None),
        (b"[,1]", None),
        (b"[1,,2]", None),
        (b"[1, [2]", None),  # unbalanced
        (b'["abc]', None),  # unterminated string
        (b"[1] x", None),  # something after the container
        (b"{}", None),  # not an array
    ],
)
def test_array_members(text: bytes, expected: list[bytes] | None) -> None:
    assert _members(text, "[") == expected
    if expected is not None:
        assert [json.loads(m) for m in expected] == json.loads(text)


def test_object_members_and_their_colons() -> None:
    text = b'{"a:b": {"c": 1}, "d" : [":"]}'
    buf = np.frombuffer(text, dtype=np.uint8)
    (starts, ends, colons), *_ = json_scan.members(buf, 0, len(buf))
    keys = [json.loads(text[s:c]) for s, c in zip(starts, colons, strict=True)]
    values = [json.loads(text[c + 1 : e]) for c, e in zip(colons, ends, strict=True)]
    assert keys == ["a:b", "d"] and values == [{"c": 1}, [":"]]


# --------------------------------------------------------------------------- pieces = whole
def _same(a: AnnotationFile, b: AnnotationFile) -> None:
    assert a.images == b.images and a.categories == b.categories and a.skipped == b.skipped
    assert len(a.annotations) == len(b.annotations)
    for x, y in zip(a.annotations, b.annotations, strict=True):
        fields = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
        assert [getattr(x, f) for f in fields] == [getattr(y, f) for f in fields]
        if isinstance(x.segmentation, list):
            assert isinstance(y.segmentation, list) and len(x.segmentation) == len(y.segmentation)
            for p, q in zip(x.segmentation, y.segmentation, strict=True):
                assert p.dtype == q.dtype == np.float64 and p.tobytes() == q.tobytes()
        else:
            assert x.segmentation == y.segmentation


def _outcome(load: Any) -> AnnotationFile | str:
    try:
        return load()
    except DataError as e:
        return str(e)


def _reference(path: Path, keep_degenerate: bool) -> AnnotationFile:
    """The whole file, every annotation through `_parse_annotation`'s checks (the shortcuts —
    bulk polygon checks, `_plain` — switched off)."""
    bulk, plain = pieces.plainly_valid_polygons, annotations._plain
    pieces.plainly_valid_polygons = lambda raw, sizes: [None] * len(raw)
    annotations._plain = lambda *args: None
    try:
        return AnnotationFile.from_dict(read_json(path), path, keep_degenerate=keep_degenerate)
    finally:
        pieces.plainly_valid_polygons, annotations._plain = bulk, plain


def _check_equal(path: Path, keep_degenerate: bool) -> None:
    whole = _outcome(lambda: _reference(path, keep_degenerate))
    piecewise = _outcome(lambda: AnnotationFile.load(path, keep_degenerate=keep_degenerate))
    if isinstance(whole, str) or isinstance(piecewise, str):
        assert piecewise == whole
    else:
        _same(piecewise, whole)


@pytest.mark.parametrize(
    "name",
    [
        "coco_sample43/instances.json",
        "lvis_v0.5_val100/lvis_val_100.json",
        "eval_fixtures/gt_n60_d300_s7.json.gz",
    ],
)
@pytest.mark.parametrize("keep_degenerate", [False, True])
def test_real_files_in_pieces_equal_whole(
    name: str, keep_degenerate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "PIECE", 50)  # many pieces
    _check_equal(DATA / name, keep_degenerate)


COORD = st.one_of(  # inside image 1 (30 × 20) or a little outside it; all digits of a double
    st.floats(-3, 33, allow_nan=False).map(lambda v: round(v, 2)),
    st.integers(-3, 33),
    st.floats(-3, 33, allow_nan=False),
)
PART = st.lists(st.tuples(COORD, COORD), min_size=0, max_size=7).map(  # < 3 points included
    lambda points: [v for point in points for v in point]
)
BAD_PART = st.one_of(  # odd length, far outside (x beyond 60, y beyond 40), a weird value
    PART.map(lambda p: [*p, 1.0]),
    PART.map(lambda p: [*p, 61.0, 5.0]),
    PART.map(lambda p: [*p, 5.0, -20.5]),
    st.tuples(PART, st.sampled_from([math.inf, 10**400, True, "1.5", None])).map(
        lambda t: [*t[0], t[1], 1.0]
    ),
)
SEGM = st.one_of(
    st.lists(PART, min_size=0, max_size=3),
    st.just({"size": [20, 30], "counts": [600]}),
    st.just({"size": [20, 30], "counts": "c26>0000000000000U;"}),  # a 6 × 8 box
)
SIZE = st.one_of(  # box sides and areas, now and then zero
    st.floats(0.5, 9, allow_nan=False).map(lambda v: round(v, 1)),
    st.integers(1, 9),
    st.floats(0.5, 9, allow_nan=False),
    st.sampled_from([0, 0.0]),
)
BOX = st.tuples(COORD, COORD, SIZE, SIZE).map(list)  # zero widths and heights included
WEIRD = st.sampled_from(
    [1, 9, 5, math.inf, -math.inf, 1e9, 10**400, 2**70, True, "1.5", None, [], {}]
)  # 1: a duplicate id, 9: an unknown image id, 5: an unknown category id
FIELDS = ["id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd"]


@st.composite
def annotation_lists(draw: st.DrawFn) -> list[dict]:
    """Annotations that are mostly well-formed (so that files load and the shortcuts are what
    decides), with an odd duplicate id, unknown id, zero-size box or weird value."""
    anns = []
    for i in range(draw(st.integers(0, 8))):
        a = {
            "id": i + 1,
            "image_id": draw(st.sampled_from([1, 1, 2])),
            "category_id": draw(st.sampled_from([1, 2])),
            "segmentation": draw(SEGM),
            "bbox": draw(BOX),
        }
        if draw(st.booleans()):
            a["area"] = draw(st.one_of(SIZE, st.just(12.5)))
        if draw(st.booleans()):
            a["iscrowd"] = draw(st.sampled_from([0, 1]))
        if draw(st.integers(0, 5)) == 5:  # (hypothesis draws 0, its simplest value, often)
            field = draw(st.sampled_from(FIELDS))
            if field == "segmentation" and draw(st.booleans()):
                a["segmentation"] = [draw(PART), draw(BAD_PART)]
            elif draw(st.booleans()):
                a[field] = draw(WEIRD)
            else:
                a.pop(field, None)
        anns.append(a)
    return anns


@fuzz(600)
@given(anns=annotation_lists(), keep=st.booleans())
def test_any_file_in_pieces_equals_whole(
    anns: list[dict], keep: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": 20, "width": 30},
            {"id": 2, "file_name": "b.jpg", "height": 20, "width": 30},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": anns,
    }
    path = tmp_path_factory.mktemp("pieces") / "gt.json"
    path.write_text(json.dumps(data))
    old = pieces.PIECE
    pieces.PIECE = 2  # several pieces per file
    try:
        _check_equal(path, keep)
    finally:
        pieces.PIECE = old


SQUARE = [2.0, 2.0, 9.0, 2.0, 9.0, 9.0, 2.0, 9.0]
EDGES = {  # image 1 is 30 × 20: points may lie within -30..60 (x) and -20..40 (y)
    "x at 2w": {"segmentation": [[*SQUARE, 60.0, 5.0]]},
    "x beyond 2w": {"segmentation": [[*SQUARE, 60.01, 5.0]]},
    "x below -w": {"segmentation": [[*SQUARE, -30.01, 5.0]]},
    "x at -w": {"segmentation": [[*SQUARE, -30, 5]]},
    "y beyond 2h": {"segmentation": [[*SQUARE, 5.0, 40.5]]},
    "y below -h": {"segmentation": [[*SQUARE, 5.0, -20.5]]},
    "y at 2h": {"segmentation": [[*SQUARE, 5.0, 40]]},
    "x in y's range": {"segmentation": [[*SQUARE, 45.0, 5.0]]},
    "y in x's range": {"segmentation": [[*SQUARE, 5.0, 45.0]]},
    "two points": {"segmentation": [SQUARE, [1.0, 1.0, 3.0, 3.0]]},
    "only two points": {"segmentation": [[1.0, 1.0, 3.0, 3.0]]},
    "odd length": {"segmentation": [[*SQUARE, 1.0]]},
    "ints": {"segmentation": [[2, 2, 9, 2, 9, 9]]},
    "a bool": {"segmentation": [[*SQUARE[:-1], True]]},
    "a string": {"segmentation": [[*SQUARE[:-1], "9"]]},
    "a huge int": {"segmentation": [[*SQUARE[:-1], 10**400]]},
    "infinity": {"segmentation": [[*SQUARE[:-1], 1e400]]},
    "nested": {"segmentation": [[SQUARE]]},
    "zero width": {"bbox": [1, 1, 0, 3]},
    "zero height": {"bbox": [1, 1, 3, 0.0]},
    "zero area": {"area": 0},
    "negative area": {"area": -1.5},
    "huge area": {"area": 10**400},
    "infinite area": {"area": math.inf},  # Infinity: orjson refuses, read whole
    "bool area": {"area": True},
    "bool crowd": {"iscrowd": True},
    "crowd": {"iscrowd": 1},
    "int box": {"bbox": [1, 1, 3, 3]},
    "huge box": {"bbox": [1, 1, 10**400, 3]},
    "bool box": {"bbox": [1, 1, True, 3]},
    "short box": {"bbox": [1, 1, 3]},
    "bool id": {"id": True},
    "huge id": {"id": 2**63},
    "id at int64's end": {"id": 2**63 - 1},
    "duplicate id": {"id": 7},
    "unknown image": {"image_id": 9},
    "unknown category": {"category_id": 5},
}


@pytest.mark.parametrize("edit", EDGES.values(), ids=EDGES.keys())
@pytest.mark.parametrize("keep", [False, True], ids=["skip", "keep"])
def test_edge_cases_in_pieces_equal_whole(edit: dict, keep: bool, tmp_path: Path) -> None:
    good = {"image_id": 1, "category_id": 1, "segmentation": [SQUARE], "bbox": [2, 2, 7, 7]}
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [{"id": 7, **good}, {"id": 8, **good, **edit}, {"id": 9, **good}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    _check_equal(path, keep)


RAW_EDGES = {  # as written in the file (json.dumps would not write these)
    "minus zero int": "[[-0, 2, 9, 2.5, 9, 9]]",
    "minus zero float": "[[-0.0, 2, 9, 2.5, 9, 9]]",
    "exponents": "[[1e1, 2E0, 9.5e+0, 2, 9, 9e-0]]",
    "long mantissas": "[[0.30000000000000004, 2.0000000000000004, 9.123456789012345, 2, 9, 9]]",
    "sixteen digits": "[[1.234567890123456, 2, 9, 2, 9, 9]]",
    "leading zero": "[[01.5, 2, 9, 2, 9, 9]]",
    "spaces": "[ [ 2 , 2 ,9,2 , 9 ,\n9 ] , [1, 1, 4, 1, 4, 4]\t]",
    "empty part": "[[], [2, 2, 9, 2, 9, 9]]",
    "many empty parts": "[" + "[]," * 3000 + "[2, 2, 9, 2, 9, 9]]",  # more parts than bytes / 4
    "then an RLE": '[[2, 2, 9, 2, 9, 9]], "segmentation": {"size": [20, 30], "counts": [600]}',
    "then a polygon": '{"size": [20, 30], "counts": [600]}, "segmentation": [[2, 2, 9, 2, 9, 9]]',
    "twice": '[[2, 2, 9, 2, 9, 9]], "segmentation": [[1, 1, 4, 1, 4, 4]]',
    "escaped key": '[[2, 2, 9, 2, 9, 9]], "segm\\u0065ntation": {"size": [20, 30], '
    '"counts": [600]}',
}


@pytest.mark.parametrize("segm", RAW_EDGES.values(), ids=RAW_EDGES.keys())
def test_written_polygons_in_pieces_equal_whole(segm: str, tmp_path: Path) -> None:
    good = '"image_id": 1, "category_id": 1, "bbox": [2, 2, 7, 7], "segmentation": '
    text = (
        '{"images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}], '
        '"categories": [{"id": 1, "name": "a"}], "annotations": ['
        f'{{"id": 1, {good}[[2, 2, 9, 2, 9, 9]]}}, {{"id": 2, {good}{segm}}}]}}'
    )
    path = tmp_path / "gt.json"
    path.write_text(text)
    _check_equal(path, keep_degenerate=False)


def test_a_long_outline_is_left_to_the_exact_check(tmp_path: Path) -> None:
    zigzag = [v for k in range(200) for v in (0.0 if k % 2 else 3000.0, float(k))]  # ~600 k px
    for repeat, loads in [(1, True), (2, False)]:  # 2 × ~600 k > MAX_OUTLINE (2**20)
        data = {
            "images": [{"id": 1, "file_name": "a.jpg", "height": 3000, "width": 3000}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9],
                 "segmentation": [zigzag * repeat]}
            ],
        }  # fmt: skip
        path = tmp_path / f"zigzag{repeat}.json"
        path.write_text(json.dumps(data))
        _check_equal(path, keep_degenerate=False)
        assert isinstance(_outcome(lambda p=path: AnnotationFile.load(p)), AnnotationFile) == loads


def test_files_the_scanner_cannot_follow_are_read_whole(tmp_path: Path) -> None:
    """Non-finite constants (orjson refuses them), duplicate keys, annotations that are not an
    array: the whole-file path reads or rejects them, with its messages."""
    base = '{"images": [{"id": 1, "file_name": "a.jpg", "height": 8, "width": 8}], '
    base += '"categories": [{"id": 1, "name": "a"}], '
    ann = '{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "segmentation": '
    cases = {
        "nan.json": base + '"annotations": [' + ann + "[[0, 0, 2, 0, NaN, 2]]}]}",
        "dup.json": base + '"annotations": [], "annotations": [' + ann + "[[0, 0, 2, 0, 2, 2]]}]}",
        "null.json": base + '"annotations": null}',
        "num.json": base + '"annotations": 3}',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        _check_equal(path, keep_degenerate=False)
    assert len(AnnotationFile.load(tmp_path / "dup.json").annotations) == 1  # the last one wins
    with pytest.raises(DataError, match=r"nan\.json: annotations\[0\] \(id 1\)\.segmentation"):
        AnnotationFile.load(tmp_path / "nan.json")
