"""Balanced mosaic (mmdetection's composition: each image fitted to half the canvas's sides,
the canvas resized like any image) and balanced copy-paste (instances kept with a probability
∝ their class's repeat factor; the source's scale and flip jittered on their own), by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from tailseg.config import AugmentConfig, SynthConfig
from tailseg.data import InstanceDataset
from tailseg.data.sampling import repeat_factors
from tailseg.data.synth import generate
from tailseg.data.transforms.common import tighten
from tailseg.data.transforms.pipeline import AugmentedDataset
from tailseg.structures import Targets
from tests.test_transforms import check, gen, solid

COLORS = [10, 80, 150, 220]
QUIET = {"flip_prob": 0.0, "crop_prob": 0.0, "jitter_prob": 0.0}  # only the step under test


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> InstanceDataset:
    cfg = SynthConfig(
        num_classes=6, train_images=8, val_images=2, seed=2, min_side=64, max_side=96, max_objects=5
    )
    out = generate(tmp_path_factory.mktemp("bsynth"), cfg, progress=False)
    return InstanceDataset(out.train_json, out.image_root, only_annotated=True)


def four() -> list[tuple[torch.Tensor, Targets]]:
    """Four 40×60 images of one colour each; object k (label k) covers rows 5..34, cols 5..54."""
    return [solid(c, label=k) for k, c in enumerate(COLORS)]


def areas(t: Targets) -> list[int]:
    return t.masks.flatten(1).sum(1).tolist()


# ---------------------------------------------------------------------------------- mosaic


def test_mosaic_fits_each_image_to_half_the_canvas_sides() -> None:
    from tailseg.data.transforms.mosaic import mosaic

    # canvas 80×120 = 2h×2w for 40×60 images, centre in the middle: an exact 2×2 tiling
    out, t = mosaic(four(), gen(), (80, 120), centre=(40, 60))
    check(out, t)
    for k, (y0, x0) in enumerate([(0, 0), (0, 60), (40, 0), (40, 60)]):
        assert (out[:, y0 : y0 + 40, x0 : x0 + 60] == COLORS[k]).all()
    assert t.labels.tolist() == [0, 1, 2, 3]
    boxes = [[5, 5, 55, 35], [65, 5, 115, 35], [5, 45, 55, 75], [65, 45, 115, 75]]
    assert t.boxes.tolist() == boxes
    # 30×50 px each: a quarter of the 60×100 px the object has when its image alone is resized
    # to the same 80×120 output (test_resize_scales_the_object: box 100×60)
    assert areas(t) == [1500] * 4


def test_mosaic_off_centre_cuts_by_hand() -> None:
    from tailseg.data.transforms.mosaic import FILL, mosaic

    out, t = mosaic(four(), gen(), (80, 120), centre=(50, 70))  # (cy, cx)
    check(out, t)
    # top-left image fully inside [10, 50) × [10, 70); the others cut at the canvas's edges
    assert t.boxes.tolist() == [
        [15, 15, 65, 45],
        [75, 15, 120, 45],  # cols 5..49 of the image left: 45 wide
        [15, 55, 65, 80],  # rows 5..29 left: 25 high
        [75, 55, 120, 80],
    ]
    assert areas(t) == [1500, 30 * 45, 25 * 50, 25 * 45]
    assert (out[:, :10] == FILL).all() and (out[:, :, :10] == FILL).all()


@pytest.mark.parametrize("seed", range(6))
def test_mosaic_objects_stay_at_tile_scale_for_any_centre(seed: int) -> None:
    from tailseg.data.transforms.mosaic import mosaic

    out, t = mosaic(four(), gen(seed), (80, 120))
    check(out, t)
    w, h = t.boxes[:, 2] - t.boxes[:, 0], t.boxes[:, 3] - t.boxes[:, 1]
    assert len(t) >= 1 and (w <= 50).all() and (h <= 30).all() and max(areas(t)) <= 1500


def test_pipeline_resizes_the_mosaic_like_any_image(synth: InstanceDataset) -> None:
    cfg = AugmentConfig(
        scale_range=(64, 64), max_size=200, mosaic_prob=1.0, copy_paste_prob=0.0, **QUIET
    )
    factors = repeat_factors(synth.ann, 0.5)
    data = AugmentedDataset(synth, factors, cfg, seed=0)
    for i in range(3):
        image, t = data[i]
        assert image.shape[-2:] == (64, 85)  # short side from scale_range, a 3:4 canvas
        check(image, t)
    own = AugmentedDataset(synth, factors, replace(cfg, mosaic_scale_range=(96, 96)), seed=0)
    assert own[0][0].shape[-2:] == (96, 128)  # an explicit mosaic range still wins


# ---------------------------------------------------------------------------- copy-paste


def test_balanced_keep_prob_by_hand() -> None:
    from tailseg.data.transforms.copy_paste import balanced_keep_prob

    r = torch.tensor([1.0, 4.0, 2.0, 8.0])  # r(c) by label
    labels = torch.tensor([0, 1, 1, 2, 3])
    crowd = torch.tensor([False, False, False, False, True])
    # r(I) = 4 (crowd regions do not count, as in repeat_factors): p = 0.5 · r(c) / 4,
    # and the crowd region of class 3 (0.5 · 8 / 4 = 1) is capped at 1
    assert balanced_keep_prob(labels, crowd, r, 0.5).tolist() == [0.125, 0.5, 0.5, 0.25, 1.0]
    assert balanced_keep_prob(labels[:0], crowd[:0], r, 0.5).shape == (0,)


def two_class_source() -> tuple[torch.Tensor, Targets]:
    """A 40×60 image: a tail object (label 1) left, a head object (label 0) right."""
    image, t = solid(200, label=1)
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 5:35, 2:28] = True
    masks[1, 5:35, 32:58] = True
    two = {"boxes": torch.zeros(2, 4), "labels": torch.tensor([1, 0]), "masks": masks}
    return image, tighten(replace(t, **two, iscrowd=torch.zeros(2, dtype=torch.bool)))


def test_balanced_copy_paste_pastes_head_instances_in_a_tail_image_less_often() -> None:
    from tailseg.data.transforms.copy_paste import balanced_keep_prob, copy_paste

    dst_img, dst = solid(20)
    dst = dst.select(torch.zeros(1, dtype=torch.bool))  # no objects: what comes out was pasted
    src = two_class_source()
    p = balanced_keep_prob(src[1].labels, src[1].iscrowd, torch.tensor([1.0, 4.0]), 0.5)
    assert p.tolist() == [0.5, 0.125]  # tail: p0; head: p0 · 1 / 4
    n, counts = 400, torch.zeros(2)
    for seed in range(n):
        _, t = copy_paste(dst_img, dst, src, gen(seed), p, blend_sigma=0)
        counts += torch.bincount(t.labels, minlength=2)
    # binomial counts within 4 standard deviations of n·p
    for count, q in zip(counts.tolist()[::-1], p.tolist(), strict=True):
        assert abs(count - n * q) <= 4 * math.sqrt(n * q * (1 - q)), (count, n * q)


def test_copy_paste_jitters_the_source_scale_and_places_it_anywhere() -> None:
    from tailseg.data.transforms.copy_paste import copy_paste

    dst_img, dst = solid(20)
    src_img, src = solid(200, label=3)
    src.masks[:] = False
    src.masks[0, 4:36, 4:56] = True  # even edges: halving keeps rows 2..17, cols 2..27
    src = tighten(src)
    corners = set()
    for seed in range(8):
        out, t = copy_paste(dst_img, dst, (src_img, src), gen(seed), 1.0, 0, scale_range=(0.5, 0.5))
        check(out, t)
        pasted = t.boxes[t.labels == 3][0].tolist()
        assert pasted[2] - pasted[0] == 26 and pasted[3] - pasted[1] == 16
        assert areas(t.select(t.labels == 3)) == [16 * 26]
        assert (out[:, t.masks[t.labels == 3][0]] == 200).all()  # the source's pixels came along
        corners.add(tuple(pasted[:2]))
    assert len(corners) > 1  # the 20×30 source lands at a random offset in the 40×60 image


def test_copy_paste_flips_the_source_on_its_own() -> None:
    from tailseg.data.transforms.copy_paste import copy_paste

    dst_img, dst = solid(20)
    dst = dst.select(torch.zeros(1, dtype=torch.bool))
    src = two_class_source()
    _, t = copy_paste(dst_img, dst, src, gen(), torch.tensor([1.0, 0.0]), 0, flip_prob=1.0)
    assert t.labels.tolist() == [1] and t.boxes.tolist() == [[32, 5, 58, 35]]  # cols 2..27 → 32..57


def test_pipeline_class_factors_give_the_image_factors(synth: InstanceDataset) -> None:
    factors = repeat_factors(synth.ann, 0.5)
    data = AugmentedDataset(synth, factors, AugmentConfig(rfs_threshold=0.5), seed=0)
    assert data.class_factors.shape == (synth.num_classes,) and (data.class_factors >= 1).all()
    for i in range(len(synth)):
        labels = synth.targets(i).labels
        assert math.isclose(float(data.class_factors[labels].max()), factors[i], rel_tol=1e-6)
    assert (data.class_factors > 1).any()  # the threshold makes some classes repeat
