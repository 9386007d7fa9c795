"""Target assignment on hand-made boxes: matcher, sampler, box coder, anchors, mask targets,
the RPN's anchor targets."""

from __future__ import annotations

import math

import torch

from tailseg.models.assign import (
    AnchorGenerator,
    BoxCoder,
    Matcher,
    Sampler,
    inside_image,
    mask_targets,
)
from tailseg.models.detectors.rpn import RPN, ProposalSettings
from tailseg.models.heads import RPNHead

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])


def test_matcher_thresholds_by_hand() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with gt 0 → positive
            [0.0, 0.0, 10.0, 5.0],  # IoU 0.5 with gt 0 → ignored between 0.3 and 0.7
            [0.0, 0.0, 10.0, 2.0],  # IoU 0.2 → negative
            [20.0, 20.0, 30.0, 27.0],  # IoU 0.7 with gt 1 → positive (>= is positive)
            [50.0, 50.0, 60.0, 60.0],  # no overlap → negative
        ]
    )
    a = Matcher(0.7, 0.3)(boxes, GT)
    assert a.labels.tolist() == [1, -1, 0, 1, 0]
    assert a.matches[[0, 3]].tolist() == [0, 1]
    torch.testing.assert_close(a.max_iou, torch.tensor([1.0, 0.5, 0.2, 0.7, 0.0]))


def test_low_quality_matches_give_every_object_its_best_box() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 2.0], [20.0, 20.0, 25.0, 30.0]])
    plain = Matcher(0.7, 0.3)(boxes, GT)
    assert plain.labels.tolist() == [-1, 0, -1]
    lq = Matcher(0.7, 0.3, min_pos_iou=0.3, low_quality_matches=True)(boxes, GT)
    assert lq.labels.tolist() == [1, 0, 1] and lq.matches[[0, 2]].tolist() == [0, 1]


def test_matcher_without_ground_truth_gives_negatives() -> None:
    a = Matcher(0.5, 0.5)(torch.rand(4, 4) * 10 + torch.tensor([0, 0, 10, 10]), torch.zeros(0, 4))
    assert a.labels.tolist() == [0, 0, 0, 0]


def test_sampler_caps_positives_and_fills_with_negatives() -> None:
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    g = torch.Generator().manual_seed(0)
    pos, neg = Sampler(num=16, pos_fraction=0.25)(labels, g)
    assert len(pos) == 4 and len(neg) == 12
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 4
    pos, neg = Sampler(num=16, pos_fraction=0.5)(torch.tensor([1, 1, 0, 0, 0]), g)
    assert len(pos) == 2 and len(neg) == 3  # fewer than asked for: take what there is


def test_box_coder_round_trip_and_hand_values() -> None:
    coder = BoxCoder(stds=(0.1, 0.1, 0.2, 0.2))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 9.0, 7.0]])
    targets = torch.tensor([[1.0, 2.0, 11.0, 22.0], [4.0, 4.0, 12.0, 9.0]])
    d = coder.encode(boxes, targets)
    # first pair: centre moves (1, 2) on a 10×20 box, same size → (0.1/0.1, 0.1/0.1, 0, 0)
    torch.testing.assert_close(d[0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(coder.decode(boxes, d), targets)
    assert abs(float(BoxCoder().encode(boxes[1:], targets[1:])[0, 2]) - math.log(2)) < 1e-6


def test_box_coder_clips_and_clamps() -> None:
    out = BoxCoder().decode(
        torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[0, 0, 50.0, 50.0]]), (20, 30)
    )
    assert torch.isfinite(out).all() and out[0, 2] <= 30 and out[0, 3] <= 20


def test_anchor_sizes_and_count() -> None:
    gen = AnchorGenerator(strides=(4, 8), ratios=(0.5, 1.0, 2.0), scales=(8.0,))
    a4, a8 = gen([(2, 3), (1, 2)], torch.device("cpu"))
    assert a4.shape == (2 * 3 * 3, 4) and a8.shape == (1 * 2 * 3, 4)
    w = a4[:3, 2] - a4[:3, 0]
    h = a4[:3, 3] - a4[:3, 1]
    torch.testing.assert_close(w * h, torch.full((3,), 32.0 * 32.0))  # area (stride·scale)²
    torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(a4[3, :2] - a4[0, :2], torch.tensor([4.0, 0.0]))  # next column


def test_mask_targets_crop_and_resize() -> None:
    masks = torch.zeros(2, 40, 40, dtype=torch.bool)
    masks[0, 10:20, 10:30] = True  # left half of the RoI below is inside
    masks[1] = True
    rois = torch.tensor([[10.0, 10.0, 50.0, 20.0], [0.0, 0.0, 40.0, 40.0]])
    t = mask_targets(masks, rois, torch.tensor([0, 1]), size=28)
    assert t.shape == (2, 28, 28)
    assert t[0, :, :13].min() == 1 and t[0, :, 15:].max() == 0
    assert t[1].min() == 1


def rpn(allowed_border: float | None = 0.0) -> RPN:
    """An RPN with the HTC settings (0.7 / 0.3, low-quality matches >= 0.3, 256 samples)."""
    matcher = Matcher(0.7, 0.3, min_pos_iou=0.3, low_quality_matches=True)
    settings = ProposalSettings()
    return RPN(
        RPNHead(8, 3),
        AnchorGenerator(),
        matcher,
        Sampler(256, 0.5),
        BoxCoder(),
        settings,
        settings,
        allowed_border=allowed_border,
    )


def test_rpn_ignores_anchors_crossing_the_image_border() -> None:
    anchors = torch.tensor(
        [
            [0.0, 0.0, 40.0, 40.0],  # the object itself → positive
            [-1.0, 0.0, 39.0, 40.0],  # IoU 0.95 but crosses the left edge → ignored
            [50.0, 5.0, 90.0, 45.0],  # inside, no overlap → negative
            [70.0, 5.0, 110.0, 45.0],  # crosses the right edge of a 100-wide image
            [60.0, 5.0, 100.0, 45.0],  # ends on the right edge: out (x2 < W, as mmdetection)
            [50.0, 20.0, 90.0, 50.0],  # ends on the bottom edge of a 50-high image: out
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    labels, deltas = rpn().anchor_targets(anchors, gt, (50, 100))
    assert labels.tolist() == [1, -1, 0, -1, -1, -1]
    assert torch.equal(deltas, torch.zeros(6, 4))  # anchor 0 is the object: zero deltas
    # each image by its own size: in a 120 × 60 image of the same padded batch, 3–5 are inside
    labels, _ = rpn().anchor_targets(anchors, gt, (60, 120))
    assert labels.tolist() == [1, -1, 0, 0, 0, 0]
    labels, _ = rpn(allowed_border=None).anchor_targets(anchors, gt, (50, 100))
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]  # every anchor a target


def test_rpn_low_quality_matches_among_inside_anchors_only() -> None:
    anchors = torch.tensor([[-4.0, 0.0, 36.0, 40.0], [0.0, 0.0, 20.0, 40.0]])  # IoU 0.82, 0.5
    gt = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    labels, deltas = rpn().anchor_targets(anchors, gt, (50, 100))
    # the object's best anchor is outside; its best inside one (0.5, between the thresholds)
    # is its low-quality match, as when mmdetection assigns the inside anchors alone
    assert labels.tolist() == [-1, 1]
    torch.testing.assert_close(deltas[1], BoxCoder().encode(anchors[1:], gt)[0])
    labels, _ = rpn().anchor_targets(anchors, gt, (10, 10))  # no anchor inside at all
    assert labels.tolist() == [-1, -1]


def test_inside_image_by_hand() -> None:
    a = torch.tensor([[-2.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 12.0, 10.0]])
    assert inside_image(a, (20, 12)).tolist() == [False, True, False]
    assert inside_image(a, (20, 12), allowed_border=2.0).tolist() == [True, True, True]
