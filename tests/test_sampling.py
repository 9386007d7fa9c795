"""Repeat factor sampling: the formula by hand, expectations, ranks, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tailseg.data import AnnotationFile
from tailseg.data.sampling import RepeatFactorSampler, repeat_factors


def ann_file(image_classes: list[list[int]]) -> AnnotationFile:
    images = [
        {"id": i + 1, "file_name": f"{i}.jpg", "height": 10, "width": 10}
        for i in range(len(image_classes))
    ]
    anns = [
        {
            "id": 100 * i + j,
            "image_id": i + 1,
            "category_id": c,
            "bbox": [0, 0, 2, 2],
            "area": 4,
            "segmentation": [[0, 0, 2, 0, 2, 2]],
        }
        for i, cs in enumerate(image_classes)
        for j, c in enumerate(cs)
    ]
    cats = [{"id": c, "name": str(c)} for c in (1, 2, 3)]
    return AnnotationFile.from_dict({"images": images, "annotations": anns, "categories": cats})


def test_repeat_factors_by_hand() -> None:
    # 100 images: class 1 in all, class 2 in 1, class 3 in 10, one image without objects
    classes = [[1]] * 88 + [[1, 2]] + [[1, 3]] * 10 + [[]]
    r = repeat_factors(ann_file(classes), threshold=0.1)
    # f(1) = 0.99 → 1; f(2) = 0.01 → sqrt(0.1/0.01) = 3.162; f(3) = 0.1 → 1
    assert r[0] == 1.0 and r[-1] == 1.0
    assert math.isclose(r[88], math.sqrt(10))
    assert r[89] == 1.0
    r2 = repeat_factors(ann_file(classes), threshold=0.4)  # class 3: sqrt(0.4/0.1) = 2
    assert math.isclose(r2[89], 2.0) and math.isclose(r2[88], math.sqrt(40))


def test_mean_copies_over_epochs_tend_to_r() -> None:
    factors = np.array([1.0, 1.5, 2.25, 3.7, 1.0])
    s = RepeatFactorSampler(factors, seed=3)
    counts = np.zeros(5)
    for e in range(2000):
        counts += np.bincount(s.epoch_indices(e), minlength=5)
    np.testing.assert_allclose(counts / 2000, factors, atol=0.05)


def test_ceil_mode_repeats_ceil_copies_every_epoch() -> None:
    s = RepeatFactorSampler(np.array([1.0, 1.2, 2.5]), mode="ceil")
    assert sorted(s.epoch_indices(0).tolist()) == [0, 1, 1, 2, 2, 2]
    assert sorted(s.epoch_indices(7).tolist()) == [0, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_ranks_are_disjoint_and_complete(ranks: int) -> None:
    factors = np.random.default_rng(0).uniform(1, 3, 23)
    samplers = [
        RepeatFactorSampler(factors, seed=5, num_replicas=ranks, rank=k) for k in range(ranks)
    ]
    for s in samplers:
        s.set_epoch(4)
    parts = [list(s) for s in samplers]
    full = samplers[0].epoch_indices(4)
    assert len({len(p) for p in parts}) == 1  # equal steps on every rank
    interleaved = [parts[k][i] for i in range(len(parts[0])) for k in range(ranks)]
    assert interleaved == full.tolist()  # each position of the epoch goes to exactly one rank
    assert len(full) % ranks == 0 and len(full) - ranks < sum(len(p) for p in parts) <= len(full)
    assert set(full.tolist()) == set(range(23))  # r >= 1: every image appears each epoch


def test_same_seed_same_order_other_epoch_other_order() -> None:
    factors = np.full(50, 1.5)
    a, b = RepeatFactorSampler(factors, seed=1), RepeatFactorSampler(factors, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert len(a) == len(list(a))


def test_stats_command_reports_rfs(coco43_json, tmp_path, capsys) -> None:
    import json

    from tailseg.cli.main import main

    out = tmp_path / "s.json"
    assert (
        main(["data", "stats", str(coco43_json), "--rfs-threshold", "0.1", "--json", str(out)]) == 0
    )
    s = json.loads(out.read_text())
    r = repeat_factors(AnnotationFile.load(coco43_json), 0.1)
    assert s["rfs_epoch_length"] == pytest.approx(r.sum()) and s["rfs_epoch_length"] > 43
    assert s["rfs_epoch_length_ceil"] == np.ceil(r).sum() >= s["rfs_epoch_length"]
    assert "repeat factor sampling (t = 0.1)" in capsys.readouterr().out


def test_category_repeat_factors_by_hand() -> None:
    from tailseg.data.sampling import category_repeat_factors

    classes = [[1]] * 88 + [[1, 2]] + [[1, 3]] * 10 + [[]]
    r = category_repeat_factors(ann_file(classes), threshold=0.4)
    # f(1) = 0.99 → 1; f(2) = 0.01 → sqrt(0.4/0.01) = sqrt(40); f(3) = 0.1 → sqrt(4) = 2
    assert r.keys() == {1, 2, 3} and r[1] == 1.0 and math.isclose(r[2], math.sqrt(40))
    assert math.isclose(r[3], 2.0)
    # an image's factor is the largest of its classes'
    assert math.isclose(repeat_factors(ann_file(classes), threshold=0.4)[88], math.sqrt(40))
