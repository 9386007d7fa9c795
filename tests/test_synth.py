"""The synthetic long-tailed benchmark: LVIS profile, federated fields, determinism, validity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tailseg.config import SynthConfig
from tailseg.data import AnnotationFile, InstanceDataset
from tailseg.data.stats import dataset_stats
from tailseg.data.synth import generate
from tailseg.data.synth.classes import (
    compress_counts,
    group_sizes,
    lvis_v1_categories,
    make_appearances,
    sample_categories,
)
from tailseg.data.synth.generate import assign_classes
from tests.conftest import data_path

SMALL = SynthConfig(
    num_classes=12, train_images=40, val_images=12, seed=3, min_side=64, max_side=96, max_objects=6
)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    return generate(tmp_path_factory.mktemp("synth"), SMALL, progress=False)


def test_bundled_categories_equal_the_lvis_v1_reference_file() -> None:
    ref = json.loads(data_path("lvis_v1_categories.json").read_text())
    keys = ("id", "name", "synset", "frequency", "image_count", "instance_count")
    assert [tuple(c[k] for k in keys) for c in lvis_v1_categories()] == [
        tuple(c[k] for k in keys) for c in ref
    ]


def test_group_sizes_keep_lvis_proportions() -> None:
    cats = lvis_v1_categories()
    # 337/461/405 of 1,203: 40 classes → 11.2 / 15.3 / 13.5 → floors 11/15/13, +1 to f (.47)
    assert group_sizes(40, cats) == {"r": 11, "c": 15, "f": 14}
    assert group_sizes(1203, cats) == {"r": 337, "c": 461, "f": 405}
    assert group_sizes(3, cats) == {"r": 1, "c": 1, "f": 1}


def test_sampled_categories_span_each_groups_tail() -> None:
    cats = sample_categories(40, np.random.default_rng(0))
    assert len({c["id"] for c in cats}) == 40
    rare = sorted(c["image_count"] for c in cats if c["frequency"] == "r")
    assert rare[0] <= 2 and rare[-1] >= 8  # stratified: both ends of 1..10 are drawn
    freq = [c["image_count"] for c in cats if c["frequency"] == "f"]
    assert min(freq) < 200 and max(freq) > 1000


def test_compress_counts_is_identity_on_the_rare_range_and_monotone() -> None:
    real = np.array([1, 2, 10, 11, 50, 100, 500, 1977])
    out = compress_counts(real, num_images=400)
    assert out[:3].tolist() == [1, 2, 10]
    assert (out[3:] > 10).all() and (np.diff(out) >= 0).all()
    assert out[-1] == 200  # the largest class fills half of the images
    assert compress_counts(np.array([3, 5000]), num_images=4).tolist() == [3, 4]


def test_assign_classes_hits_every_target_count() -> None:
    counts = np.array([30, 12, 5, 1, 1])
    layout = assign_classes(counts, 40, np.random.default_rng(1))
    got = [sum(c in cls for cls in layout) for c in range(5)]
    assert got == counts.tolist()
    assert all(len(set(cls)) == len(cls) for cls in layout)


def test_appearances_are_distinct() -> None:
    apps = make_appearances(40, np.random.default_rng(0))
    assert len({(a.shape, a.texture, tuple(round(v) for v in a.color)) for a in apps}) == 40


def test_output_is_valid_lvis_with_a_long_tail(synth) -> None:
    from lvis import LVIS

    train = AnnotationFile.load(synth.train_json)
    assert train.num_classes == 12 and len(train.images) == 40
    counts = {c.id: c.image_count for c in train.categories}
    s = dataset_stats(train)
    for c in s["per_category"]:  # category image_count is this train split's count
        assert c["images"] == counts[c["id"]]
    rare = [c for c in s["per_category"] if c["frequency"] == "r"]
    assert rare and all(1 <= c["images"] <= 10 for c in rare)
    assert (
        min(c["images"] for c in s["per_category"])
        < 5
        < max(c["images"] for c in s["per_category"])
    )
    lvis = LVIS(str(synth.val_json))
    val = AnnotationFile.load(synth.val_json)
    for ann in val.annotations:  # our masks are lvis-api's masks
        assert np.array_equal(val.mask(ann), lvis.ann_to_mask(lvis.anns[ann.id]).astype(bool))


def test_federated_fields_are_consistent(synth) -> None:
    for path in (synth.train_json, synth.val_json):
        ann = AnnotationFile.load(path)
        assert ann.is_federated
        total_neg = 0
        for im in ann.images:
            present = {a.category_id for a in ann.anns_by_image[im.id]}
            assert not present & set(im.neg_category_ids)
            assert set(im.not_exhaustive_category_ids) <= present
            total_neg += len(im.neg_category_ids)
        assert total_neg > 0


def test_instances_do_not_overlap_and_boxes_are_tight(synth) -> None:
    ann = AnnotationFile.load(synth.train_json)
    polygons = 0
    for im in ann.images:
        anns = ann.anns_by_image[im.id]
        union = np.zeros((im.height, im.width), dtype=np.int32)
        for a in anns:
            m = ann.mask(a)
            union += m
            ys, xs = np.nonzero(m)
            assert list(a.bbox) == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert a.area == m.sum()
            polygons += isinstance(a.segmentation, list)
        assert union.max() <= 1  # occluded objects are annotated by their visible pixels
    assert 0 < polygons < len(ann.annotations)  # both polygon and RLE annotations occur


def test_objects_carry_their_class_appearance(synth) -> None:
    """Mean colour inside instances differs more between classes than within a class."""
    ds = InstanceDataset(synth.train_json, synth.image_root)
    colours: dict[int, list[np.ndarray]] = {}
    for i in range(len(ds)):
        image, t = ds[i]
        for m, label in zip(t.masks, t.labels, strict=True):
            if m.sum() >= 30:
                colours.setdefault(int(label), []).append(image[:, m].float().mean(1).numpy())
    means = {k: np.mean(v, 0) for k, v in colours.items() if len(v) >= 3}
    within = np.mean([np.linalg.norm(c - means[k]) for k in means for c in colours[k]])
    keys = sorted(means)
    between = np.mean([np.linalg.norm(means[a] - means[b]) for a in keys for b in keys if a < b])
    assert between > 1.5 * within


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    tiny = SynthConfig(
        num_classes=5, train_images=6, val_images=3, seed=9, min_side=48, max_side=64, max_objects=3
    )
    generate(tmp_path / "a", tiny, progress=False)
    generate(tmp_path / "b", tiny, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = SynthConfig(**{**tiny.__dict__, "seed": 10})
    generate(tmp_path / "c", other, progress=False)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
