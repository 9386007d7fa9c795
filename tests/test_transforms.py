"""Transforms: tight boxes after every step, identities, copy-paste and mosaic by construction,
and reproducibility for a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tailseg.config import AugmentConfig, SynthConfig
from tailseg.data import InstanceDataset
from tailseg.data.sampling import repeat_factors
from tailseg.data.synth import generate
from tailseg.data.transforms import (
    color_jitter,
    copy_paste,
    crop,
    hflip,
    mosaic,
    random_crop,
    random_hflip,
    random_resize,
)
from tailseg.data.transforms.common import tight_boxes, tighten
from tailseg.data.transforms.pipeline import AugmentedDataset
from tailseg.structures import Targets


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> InstanceDataset:
    cfg = SynthConfig(
        num_classes=6, train_images=8, val_images=2, seed=2, min_side=64, max_side=96, max_objects=5
    )
    out = generate(tmp_path_factory.mktemp("tsynth"), cfg, progress=False)
    return InstanceDataset(out.train_json, out.image_root)


def sample(ds: InstanceDataset, i: int = 0) -> tuple[torch.Tensor, Targets]:
    image, t = ds[i]
    return image, tighten(t)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def solid(color: int, h: int = 40, w: int = 60, label: int = 0) -> tuple[torch.Tensor, Targets]:
    image = torch.full((3, h, w), color, dtype=torch.uint8)
    masks = torch.zeros(1, h, w, dtype=torch.bool)
    masks[0, 5 : h - 5, 5 : w - 5] = True
    none = torch.zeros(0, dtype=torch.long)
    t = Targets(
        torch.zeros(1, 4),
        torch.tensor([label]),
        masks,
        torch.zeros(1, dtype=torch.bool),
        color,
        (h, w),
        torch.tensor([label + 1]),
        none,
    )
    return image, tighten(t)


def check(image: torch.Tensor, t: Targets) -> None:
    """The invariants every transform keeps."""
    h, w = image.shape[-2:]
    assert image.dtype == torch.uint8 and t.image_size == (h, w)
    assert t.masks.shape == (len(t), h, w) and len(t.labels) == len(t.boxes) == len(t)
    assert t.masks.flatten(1).any(1).all()  # no empty instance survives
    torch.testing.assert_close(t.boxes, tight_boxes(t.masks))


def test_tight_boxes_by_nonzero_pixels(synth: InstanceDataset) -> None:
    _, t = synth[1]
    expected = []
    for m in t.masks.numpy():
        ys, xs = np.nonzero(m)
        expected.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    torch.testing.assert_close(tight_boxes(t.masks), torch.tensor(expected, dtype=torch.float32))
    empty = torch.zeros(1, 4, 5, dtype=torch.bool)
    assert tight_boxes(empty).tolist() == [[0.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("seed", range(4))
def test_every_transform_keeps_boxes_tight(synth: InstanceDataset, seed: int) -> None:
    g = gen(seed)
    image, t = sample(synth, seed)
    for step in (
        lambda i, t: random_resize(i, t, g, (48, 140), 160),
        lambda i, t: random_hflip(i, t, g, 1.0),
        lambda i, t: random_crop(i, t, g, 1.0, 0.5),
        lambda i, t: color_jitter(i, t, g, prob=1.0),
        lambda i, t: copy_paste(i, t, sample(synth, seed + 1), g),
        lambda i, t: copy_paste(
            i, t, sample(synth, seed + 2), g, 1.0, scale_range=(0.5, 2.0), flip_prob=0.5
        ),
    ):
        image, t = step(image, t)
        check(image, t)
    image, t = mosaic([sample(synth, k) for k in range(4)], g, (90, 120))
    check(image, t)


def test_flip_twice_is_the_identity(synth: InstanceDataset) -> None:
    image, t = sample(synth)
    i2, t2 = hflip(*hflip(image, t))
    assert torch.equal(i2, image) and torch.equal(t2.masks, t.masks)
    torch.testing.assert_close(t2.boxes, t.boxes)
    _i1, t1 = hflip(image, t)
    torch.testing.assert_close(t1.boxes, tight_boxes(t1.masks))


def test_crop_by_hand() -> None:
    image, t = solid(50)  # mask rows 5..34, cols 5..54
    out, tc = crop(image, t, 10, 20, 20, 30)
    assert out.shape == (3, 20, 30) and tc.boxes.tolist() == [[0.0, 0.0, 30.0, 20.0]]
    _, empty = crop(image, t, 0, 0, 4, 4)
    assert len(empty) == 0


def test_random_crop_retries_rather_than_losing_every_object() -> None:
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    masks = torch.zeros(1, 100, 100, dtype=torch.bool)
    masks[0, 0:3, 0:3] = True  # a tiny object in a corner that most windows miss
    none = torch.zeros(0, dtype=torch.long)
    t = tighten(
        Targets(
            torch.zeros(1, 4),
            torch.tensor([0]),
            masks,
            torch.zeros(1, dtype=torch.bool),
            0,
            (100, 100),
            none,
            none,
        )
    )
    for seed in range(20):
        _, out = random_crop(image, t, gen(seed), prob=1.0, min_fraction=0.5)
        assert len(out) == 1


def test_resize_scales_the_object() -> None:
    image, t = solid(50)
    out, t2 = random_resize(image, t, gen(), (80, 80), 1000)  # short side 40 → 80
    assert out.shape == (3, 80, 120)
    torch.testing.assert_close(t2.boxes, torch.tensor([[10.0, 10.0, 110.0, 70.0]]))


def test_copy_paste_by_construction() -> None:
    dst_img, dst = solid(20, label=0)  # one object covering the middle
    src_img, src = solid(200, label=3)  # same size: pasted over the same region
    out, t = copy_paste(dst_img, dst, (src_img, src), gen(), keep_prob=1.0, blend_sigma=0)
    # the destination object is fully covered → dropped as too occluded; the pasted one stays
    assert t.labels.tolist() == [3]
    assert (out[:, 5:35, 5:55] == 200).all() and (out[:, :5] == 20).all()
    assert 3 not in t.neg_labels.tolist()  # a pasted class cannot stay "verified absent"
    # a smaller source leaves the destination object partly visible: both are kept
    small_img = torch.full((3, 40, 60), 200, dtype=torch.uint8)
    small = src.select(torch.tensor([True]))
    small.masks[:] = False
    small.masks[0, 5:15, 5:15] = True
    _out2, t2 = copy_paste(dst_img, dst, (small_img, tighten(small)), gen(), 1.0, 0)
    assert sorted(t2.labels.tolist()) == [0, 3]
    kept = t2.masks[t2.labels == 0][0]
    assert not kept[5:15, 5:15].any() and kept.sum() == 30 * 50 - 100


def test_mosaic_by_construction() -> None:
    colors = [10, 80, 150, 220]
    out, t = mosaic([solid(c, label=k) for k, c in enumerate(colors)], gen(3), (80, 120))
    assert out.shape == (3, 80, 120)
    for m, label in zip(t.masks, t.labels.tolist(), strict=True):
        assert (out[:, m] == colors[label]).all()  # every instance lies on its own image
    ys, xs = torch.nonzero(t.masks[t.labels == 0][0], as_tuple=True)
    ys3, xs3 = torch.nonzero(t.masks[t.labels == 3][0], as_tuple=True)
    assert ys.max() < ys3.min() and xs.max() < xs3.min()  # top-left above-left of bottom-right


def test_pipeline_is_reproducible_and_varies_by_epoch(synth: InstanceDataset) -> None:
    cfg = AugmentConfig(
        scale_range=(48, 96),
        max_size=128,
        mosaic_prob=0.5,
        mosaic_scale_range=(64, 96),
        copy_paste_prob=0.5,
    )
    factors = repeat_factors(synth.ann, 0.5)
    a = AugmentedDataset(synth, factors, cfg, seed=1)
    b = AugmentedDataset(synth, factors, cfg, seed=1)
    for i in range(len(a)):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta.masks, tb.masks)
        check(ia, ta)
    a.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    assert np.isclose(float(a.draw_p.sum()), 1.0)


def test_preview_command_writes_a_grid(tmp_path: Path, capsys) -> None:
    from tailseg.cli.main import main

    out = tmp_path / "grid.png"
    small = [
        "data.synth.train_images=10",
        "data.synth.val_images=2",
        "data.synth.min_side=48",
        "data.synth.max_side=64",
        "data.augment.scale_range=[48,64]",
        "data.augment.mosaic_scale_range=[64,80]",
        "data.augment.max_size=96",
    ]
    assert main(["data", "preview", "tiny", *small, "--out", str(out), "--n", "4"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG") and str(out) in capsys.readouterr().out


def test_loader_workers_give_the_same_samples(synth: InstanceDataset) -> None:
    from tailseg.engine.trainer import _batches

    cfg = AugmentConfig(scale_range=(48, 64), max_size=96, mosaic_scale_range=(64, 80))
    data = AugmentedDataset(synth, repeat_factors(synth.ann, 0.5), cfg, seed=2)
    batches = [[0, 3], [5, 1], [2]]
    here = list(_batches(data, batches, 0))
    workers = list(_batches(data, batches, 2))
    assert [len(b) for b in workers] == [2, 2, 1]
    for a, b in zip(here, workers, strict=True):
        for (ia, ta), (ib, tb) in zip(a, b, strict=True):
            assert torch.equal(ia, ib) and torch.equal(ta.masks, tb.masks)


class FreezeCount(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        import gc

        return gc.get_freeze_count()


def test_loader_workers_leave_the_parents_objects_out_of_collections() -> None:
    import gc

    from tailseg.engine.trainer import _batches

    (seen,) = list(_batches(FreezeCount(), [[0, 1]], 1))
    assert min(seen) > 1000  # the objects the parent had when the worker forked
    assert gc.get_freeze_count() == 0  # and the parent collects them again
