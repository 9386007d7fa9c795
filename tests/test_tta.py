"""Test-time augmentation: one scale without flip is plain inference; flip merging is symmetric."""

from __future__ import annotations

import pytest
import torch

from tailseg.config import InferConfig
from tailseg.engine.evaluate import predict_image
from tailseg.inference.tta import Augmented, from_frame, to_frame, tta_detect
from tests.conftest import float64
from tests.test_htc import REFINE_MS, image, tiny_model

MODELS = pytest.mark.parametrize("heads", [(), REFINE_MS], ids=["htc", "refinemask+ms"])


@MODELS
def test_one_scale_without_flip_is_plain_inference(heads: tuple[str, ...]) -> None:
    model = tiny_model("infer.max_per_img=30", *heads).eval()
    img = image(90, 120, seed=4)
    infer = InferConfig(short_side=112, max_size=160)
    plain = predict_image(model, img, infer)
    tta = tta_detect(model, img, [(160, 112)], flip=False)
    assert tta.image_size == plain.image_size == (90, 120)
    for field in ("boxes", "scores", "labels", "masks", "segm_scores"):
        assert torch.equal(getattr(tta, field), getattr(plain, field)), field
    assert (plain.mask_scores is None) == (not heads)


def test_frame_mapping_round_trips() -> None:
    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0], [0.0, 0.0, 100.0, 50.0]])
    for flip in (False, True):
        there = to_frame(boxes, (1.5, 2.0), flip, width=150)
        torch.testing.assert_close(from_frame(there, (1.5, 2.0), flip, width=150), boxes)
    assert to_frame(boxes, (1.0, 1.0), True, width=100)[0].tolist() == [70.0, 5.0, 90.0, 25.0]


@MODELS
def test_flip_merge_on_a_symmetric_image_is_symmetric(heads: tuple[str, ...]) -> None:
    with float64():  # an image and its mirror run through mirrored kernels: conftest.float64
        model = tiny_model(*heads).eval()
        half = image(96, 64, seed=8)
        img = torch.cat([half, half.flip(-1)], dim=-1)  # (3, 96, 128), mirror-symmetric
        assert torch.equal(img, img.flip(-1))
        aug = Augmented(model, img, [(128, 96)], flip=True)  # the frames keep the image's size
        assert len(aug.frames) == 2 and aug.frames[0].size == (96, 128)
        g = torch.Generator().manual_seed(0)
        xy = torch.rand(6, 2, generator=g) * torch.tensor([80.0, 60.0])
        boxes = torch.cat([xy, xy + 20 + torch.rand(6, 2, generator=g) * 30], dim=1)
        mirror = torch.stack([128 - boxes[:, 2], boxes[:, 1], 128 - boxes[:, 0], boxes[:, 3]], 1)
        probs, out = aug.score(torch.cat([boxes, mirror]))
        labels = torch.arange(6) % 6
        masks, ious = aug.masks(torch.cat([boxes, mirror]), torch.cat([labels, labels]))
    assert probs.dtype == torch.float64
    torch.testing.assert_close(probs[:6], probs[6:], rtol=1e-9, atol=1e-12)
    out_mirror = torch.stack([128 - out[6:, 2], out[6:, 1], 128 - out[6:, 0], out[6:, 3]], 1)
    torch.testing.assert_close(out[:6], out_mirror, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(masks[:6], masks[6:].flip(-1), rtol=1e-9, atol=1e-9)
    assert masks.shape[-1] == (112 if heads else 28)
    if heads:  # a box and its mirror: equal predicted mask IoUs
        torch.testing.assert_close(ious[:6], ious[6:], rtol=1e-9, atol=1e-12)


@MODELS
def test_multi_scale_flip_tta_returns_image_frame_detections(heads: tuple[str, ...]) -> None:
    model = tiny_model("infer.max_per_img=25", *heads).eval()
    img = image(80, 100, seed=9)
    det = tta_detect(model, img, [(128, 96), (160, 120)], flip=True)
    assert det.image_size == (80, 100) and 0 < len(det) <= 25
    assert (det.boxes[:, 2] <= 100).all() and (det.boxes[:, 3] <= 80).all()
    side = 112 if heads else 28
    assert det.masks.shape == (len(det), side, side)
    assert len(det.to_rles()) == len(det)
    if heads:  # mask score = box score × the predicted IoU averaged over augmentations
        aug = Augmented(model, img, [(128, 96), (160, 120)], flip=True)
        masks, ious = aug.masks(det.boxes, det.labels)
        torch.testing.assert_close(masks, det.masks)
        torch.testing.assert_close(det.mask_scores, det.scores * ious.clamp(0, 1))


@MODELS
def test_recomputing_features_per_phase_gives_the_held_features_result(
    heads: tuple[str, ...],
) -> None:
    model = tiny_model("infer.max_per_img=20", *heads).eval()
    img = image(80, 100, seed=5)
    scales = [(128, 96), (160, 120)]
    held = tta_detect(model, img, scales, flip=True)
    calls = []
    model.neck.register_forward_hook(lambda m, args, out: calls.append(1))
    again = tta_detect(model, img, scales, flip=True, hold_features=False)
    assert len(calls) == 3 * 4  # 4 frames, once in each of the 3 phases
    for field in ("boxes", "scores", "labels", "masks", "segm_scores"):
        assert torch.equal(getattr(again, field), getattr(held, field)), field
