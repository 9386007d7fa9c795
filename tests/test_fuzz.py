"""Property-based fuzzing of the three readers of user input (hypothesis, deterministic).

The property: every input either loads or raises tailseg's own error (DataError for json,
ConfigError for configs) with a one-line message naming the file (or "command line") — never any
other exception. What loads is also usable: every ground-truth and result mask decodes, the
results evaluate, the config is a `Config`.

Inputs are valid files with random edits (wrong types, missing keys, out-of-range ids, garbage
RLE and polygons, non-dict entries, NaN/Infinity, byte-level damage) and free-form YAML text and
overrides. `derandomize=True` and no example database make every run try the same inputs.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailseg.config import Config, ConfigError, load_config
from tailseg.data import AnnotationFile, DataError
from tailseg.evaluation import evaluate, make_protocol
from tailseg.evaluation.detections import load_results

TRIED: Counter[str] = Counter()  # inputs tried per reader (printed at the end of the module)


def fuzz(examples: int) -> Callable:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def report_count() -> Iterator[None]:
    yield
    print(f"\nfuzz inputs tried: {dict(TRIED)} = {sum(TRIED.values())}")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- values and edits
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=6)  # json.dumps-able
RLE_CHARS = st.text(st.sampled_from("0123456789:;<=>?@ABOPQ[\\]^_`aijno~ é\x00"), max_size=8)
NUMBERS = [None, True, False, 0, -1, 1, 3, 8, 10, 2**31, 2**63, 2**64, 0.5, -0.0, 1e308]
STRINGS = [float("nan"), float("inf"), -float("inf"), "", "r", "x", "é", "`2", "0", "zz", "\x00"]
SHAPES = [[], [80], [70], [1, 2], [[1, 2, 3, 4, 5, 6]], [[0, 0, 1e9, 0, 5, 5]], {}, {"size": [8]}]
SPECIAL = st.sampled_from([*NUMBERS, *STRINGS, *SHAPES])
SCALAR = st.one_of(
    SPECIAL,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    RLE_CHARS,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def mutate(draw: Callable, data: Any, values: st.SearchStrategy = VALUE) -> Any:
    """1–4 random edits anywhere in a json-like tree: replace, delete, duplicate or insert."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(data)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "insert"]))
        if not path:
            data = copy.deepcopy(draw(values)) if op == "replace" else [data]
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "replace":
            parent[key] = copy.deepcopy(draw(values))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "duplicate":
            parent[key] = [parent[key]]
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(draw(values)))
        else:
            parent[draw(TEXT)] = copy.deepcopy(draw(values))
    return data


def damage(draw: Callable, raw: bytes) -> bytes:
    """1–3 byte-level edits: delete, insert or replace a short run."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 4))
        new = draw(st.binary(max_size=4) | st.sampled_from([b"NaN", b"-Infinity", b"\xff", b"}"]))
        raw = raw[:at] + new + raw[at + cut :]
    return raw


def one_line_error(error: Exception, source: str) -> None:
    text = str(error)
    assert "\n" not in text and "\r" not in text, text
    assert text.startswith(f"{source}: ") or text.startswith(f"{source}:"), text


# --------------------------------------------------------------------------- (a) annotations
def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


BLOCK = np.zeros((8, 10), dtype=bool)
BLOCK[2:6, 3:9] = True
GT = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "height": 8, "width": 10, "neg_category_ids": [3]},
        {
            "id": 2,
            "coco_url": "http://x/val2017/b.jpg",
            "height": 6,
            "width": 7,
            "not_exhaustive_category_ids": [1],
        },
    ],
    "categories": [
        {"id": 1, "name": "cat", "frequency": "f", "image_count": 2},
        {"id": 2, "name": "dog", "frequency": "c"},
        {"id": 3, "name": "emu", "frequency": "r", "instance_count": 0},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 1, 5, 5],
            "area": 25,
            "segmentation": [[1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 2,
            "bbox": [3, 2, 6, 4],
            "area": 24,
            "segmentation": _rle(BLOCK),
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 2,
            "bbox": [0, 0, 7, 1],
            "area": 7,
            "iscrowd": 1,
            "segmentation": {
                "size": [6, 7],
                "counts": [0, 1, 5, 1, 5, 1, 5, 1, 5, 1, 5, 1, 5, 1, 5],
            },
        },
        {
            "id": 4,
            "image_id": 2,
            "category_id": 3,
            "bbox": [0, 0, 0, 0],
            "area": 0,
            "segmentation": [[1.0, 1.0, 2.0, 2.0]],
        },
    ],
}


@st.composite
def segmentations(draw: Callable) -> Any:
    """Segmentations near the valid ones: RLE strings and run lists of about the right length,
    sizes right or wrong, polygons inside, outside or far from the image."""
    kind = draw(st.sampled_from(["string", "runs", "polygons", "mask"]))
    size = draw(st.sampled_from([[8, 10], [8, 10], [6, 7], [10, 8], [8], [8.0, 10.0], None]))
    if kind == "mask":  # a valid RLE of a random mask, then maybe one character changed
        bits = draw(st.lists(st.booleans(), min_size=80, max_size=80))
        counts = _rle(np.array(bits).reshape(8, 10))["counts"]
        if draw(st.booleans()):
            at = draw(st.integers(0, len(counts) - 1))
            counts = counts[:at] + draw(st.sampled_from("0O_`aio~é")) + counts[at + 1 :]
        return {"size": size, "counts": counts}
    if kind == "string":
        alphabet = st.sampled_from([chr(c) for c in range(48, 112)] + ["~", " ", "é", "\x00"])
        return {"size": size, "counts": draw(st.text(alphabet, max_size=10))}
    if kind == "runs":
        runs = draw(st.lists(st.integers(-2, 40), max_size=6))
        if draw(st.booleans()):
            runs.append(80 - sum(runs))  # sums to h*w for 8x10
        return {"size": size, "counts": runs}
    coords = st.floats(-15, 25) | st.sampled_from([float("nan"), 1e12, -1e12, True, "1"])
    return draw(st.lists(st.lists(coords, max_size=10), max_size=3))


def check_annotation_file(path: Path, keep_degenerate: bool) -> None:
    """The property: loads (and every mask decodes) or a one-line DataError naming the file."""
    try:
        ann = AnnotationFile.load(path, keep_degenerate=keep_degenerate)
    except DataError as e:
        one_line_error(e, str(path))
        return
    for a in ann.annotations:
        rle = ann.rle(a)
        im = ann.image_by_id[a.image_id]
        assert rle["size"] == [im.height, im.width]
        if im.height * im.width <= 10_000:
            assert mask_utils.decode(rle).shape == (im.height, im.width)


def test_the_unedited_ground_truth_loads(folder: Path) -> None:
    path = folder / "gt_ok.json"
    path.write_text(json.dumps(GT))
    assert len(AnnotationFile.load(path, keep_degenerate=True).annotations) == 4


@fuzz(400)
@given(data=st.data(), keep_degenerate=st.booleans())
def test_fuzz_annotation_reader_edited_values(
    folder: Path, data: Any, keep_degenerate: bool
) -> None:
    TRIED["annotations (edited json)"] += 1
    path = folder / "gt.json"
    path.write_text(json.dumps(mutate(data.draw, GT)))  # NaN and Infinity as Python writes them
    check_annotation_file(path, keep_degenerate)


@fuzz(300)
@given(segm=segmentations(), index=st.integers(0, 3), keep_degenerate=st.booleans())
def test_fuzz_annotation_reader_segmentations(
    folder: Path, segm: Any, index: int, keep_degenerate: bool
) -> None:
    TRIED["annotations (segmentations)"] += 1
    data = copy.deepcopy(GT)
    data["annotations"][index]["segmentation"] = segm
    path = folder / "gt_segm.json"
    path.write_text(json.dumps(data))
    check_annotation_file(path, keep_degenerate)


@fuzz(200)
@given(data=st.data())
def test_fuzz_annotation_reader_damaged_bytes(folder: Path, data: Any) -> None:
    TRIED["annotations (damaged bytes)"] += 1
    path = folder / "gt_bytes.json"
    path.write_bytes(damage(data.draw, json.dumps(GT).encode()))
    check_annotation_file(path, keep_degenerate=True)


# --------------------------------------------------------------------------- (b) results
RESULTS = [
    {
        "image_id": 1,
        "category_id": 1,
        "score": 0.9,
        "bbox": [1, 1, 5, 5],
        "segmentation": _rle(BLOCK),
    },
    {
        "image_id": 1,
        "category_id": 2,
        "score": 0.5,
        "bbox": [3, 2, 6, 4],
        "segmentation": {"size": [8, 10], "counts": [20, 4, 4, 4, 4, 4, 40]},
    },
    {
        "image_id": 2,
        "category_id": 3,
        "score": 0.1,
        "bbox": [0, 0, 3, 3],
        "segmentation": [[0.0, 0.0, 3.0, 0.0, 3.0, 3.0], [4.0, 4.0, 5.0, 4.0]],
    },
]


@pytest.fixture(scope="module")
def ground_truth(folder: Path) -> AnnotationFile:
    path = folder / "gt_for_results.json"
    path.write_text(json.dumps(GT))
    return AnnotationFile.load(path, keep_degenerate=True)


def check_results_file(path: Path, gt: AnnotationFile, iou_type: str) -> None:
    """The property: loads (masks decode, boxes and scores are sane, it evaluates) or a one-line
    DataError naming the file."""
    try:
        dets = load_results(path, gt, need_masks=iou_type != "bbox")
    except DataError as e:
        one_line_error(e, str(path))
        return
    assert np.isfinite(dets.scores).all() and (dets.scores >= 0).all()
    if dets.boxes is not None:
        assert np.isfinite(dets.boxes).all() and (dets.boxes[:, 2:] >= 0).all()
    for i, rle in enumerate(dets.rles or []):
        im = gt.image_by_id[int(dets.image_ids[i])]
        assert mask_utils.decode(rle).shape == (im.height, im.width)
    evaluate(gt, dets, make_protocol("lvis", iou_type))


def test_the_unedited_results_evaluate(folder: Path, ground_truth: AnnotationFile) -> None:
    path = folder / "res_ok.json"
    path.write_text(json.dumps(RESULTS))
    assert len(load_results(path, ground_truth, need_masks=True)) == 3


@fuzz(300)
@given(data=st.data(), iou_type=st.sampled_from(["segm", "bbox", "boundary"]))
def test_fuzz_results_reader_edited_values(
    folder: Path, ground_truth: AnnotationFile, data: Any, iou_type: str
) -> None:
    TRIED["results (edited json)"] += 1
    path = folder / "res.json"
    path.write_text(json.dumps(mutate(data.draw, RESULTS)))
    check_results_file(path, ground_truth, iou_type)


@fuzz(300)
@given(segm=segmentations(), index=st.integers(0, 2))
def test_fuzz_results_reader_segmentations(
    folder: Path, ground_truth: AnnotationFile, segm: Any, index: int
) -> None:
    TRIED["results (segmentations)"] += 1
    results = copy.deepcopy(RESULTS)
    results[index]["segmentation"] = segm
    path = folder / "res_segm.json"
    path.write_text(json.dumps(results))
    check_results_file(path, ground_truth, "boundary")


@fuzz(150)
@given(data=st.data())
def test_fuzz_results_reader_damaged_bytes(
    folder: Path, ground_truth: AnnotationFile, data: Any
) -> None:
    TRIED["results (damaged bytes)"] += 1
    path = folder / "res_bytes.json"
    path.write_bytes(damage(data.draw, json.dumps(RESULTS).encode()))
    check_results_file(path, ground_truth, "segm")


# --------------------------------------------------------------------------- (c) configs
CONFIG = {
    "data": {"augment": {"scale_range": [160, 256], "max_size": 384, "hue": 0.02}},
    "model": {
        "num_classes": 5,
        "backbone": {"kind": "resnet", "depth": 26, "base_width": 16},
        "fpn_channels": 64,
        "roi": {"stage_ious": [0.5, 0.6, 0.7], "fc_dim": 256, "cls_loss": "seesaw"},
    },
    "train": {"epochs": 2, "lr": 0.0004, "lr_steps": [1], "grad_clip": 10.0, "patience": None},
    "eval": {"iou_types": ["segm", "bbox"], "max_dets_per_image": 300},
    "infer": {"short_side": 224, "tta_scales": [[1600, 1000]]},
}
KEYS = sorted(
    {".".join(map(str, p)) for p in _paths(CONFIG) if p and all(isinstance(k, str) for k in p)}
    | {"train.ema_momentum", "model.rpn.pos_iou", "model.backbone.depths", "data.synth.seed"}
)
YAML_TOKENS = st.sampled_from(
    ["train:", "model:", "\n", "\n  ", "  ", "epochs: ", "lr: ", "base: ", "base: x.yaml", "- ",
     ": ", "&a ", "*a", "&b [*b]", "<<: *a", "[", "]", "{", "}", ", ", "? ", "'", '"', "#", "---",
     "...", "!!python/object:os.system ", "!!binary ", "!!set ", "%YAML 1.1\n", "\t", "1e400",
     ".nan", "-.inf", "0x1F", "2020-01-01", "yes", "~", "null", "é", "\x00", "\x85", "3", "-1",
     "0.5", "[1, 2]", "{a: 1, a: 2}", "resnet", "depth: 27", "epochs: 2\n  epochs: 3"]
)  # fmt: skip


def check_config(path: Path, overrides: list[str]) -> None:
    """The property: a Config, or a one-line ConfigError naming the file or the command line."""
    try:
        cfg = load_config(str(path), overrides)
    except ConfigError as e:
        text = str(e)
        assert "\n" not in text and "\r" not in text, text
        assert text.startswith((f"{path}", "command line: ", f"{path.parent}")), text
        return
    assert isinstance(cfg, Config)


def test_the_unedited_config_loads(folder: Path) -> None:
    path = folder / "ok.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert load_config(str(path)).model.backbone.depth == 26


@fuzz(400)
@given(data=st.data())
def test_fuzz_config_edited_values(folder: Path, data: Any) -> None:
    TRIED["config (edited YAML)"] += 1
    path = folder / "edited.yaml"
    path.write_text(yaml.safe_dump(mutate(data.draw, CONFIG), allow_unicode=True))
    check_config(path, [])


@fuzz(300)
@given(tokens=st.lists(YAML_TOKENS, max_size=12))
def test_fuzz_config_free_text(folder: Path, tokens: list[str]) -> None:
    TRIED["config (free YAML text)"] += 1
    path = folder / "free.yaml"
    path.write_text("".join(tokens), encoding="utf-8")
    check_config(path, [])


@fuzz(300)
@given(
    keys=st.lists(st.sampled_from(KEYS) | st.text(max_size=8), min_size=1, max_size=3),
    values=st.lists(st.lists(YAML_TOKENS, max_size=4).map("".join), min_size=3, max_size=3),
    suffixes=st.lists(st.sampled_from(["", ".x", "[0]", "..", " "]), min_size=3, max_size=3),
)
def test_fuzz_config_overrides(
    folder: Path, keys: list[str], values: list[str], suffixes: list[str]
) -> None:
    TRIED["config (overrides)"] += 1
    path = folder / "base_for_overrides.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(CONFIG))
    overrides = [f"{k}{s}={v}" for k, s, v in zip(keys, suffixes, values, strict=False)]
    check_config(path, overrides)
