"""One box per class (`model.roi.class_agnostic_boxes=false`, Mask R-CNN's box head)."""

from __future__ import annotations

import torch

from tailseg.models.detectors.postprocess import multiclass_nms
from tailseg.models.heads import class_deltas
from tests.conftest import float64
from tests.test_htc import C, image, targets, tiny_model

PER_CLASS = "model.roi.class_agnostic_boxes=false"


def test_class_deltas_by_hand() -> None:
    deltas = torch.arange(2 * 4 * 3, dtype=torch.float64).view(2, 12)  # 2 RoIs, 3 classes
    assert class_deltas(deltas, torch.tensor([2, 0])).tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]]
    assert class_deltas(deltas, torch.tensor([3, 3]))[0].tolist() == [8, 9, 10, 11]  # background
    agnostic = torch.ones(2, 4)
    assert class_deltas(agnostic, torch.tensor([5, 1])) is agnostic


def test_nms_keeps_each_class_its_own_box() -> None:
    boxes = torch.tensor([[[0, 0, 10, 10], [50, 50, 60, 60]]], dtype=torch.float64)  # (1, 2, 4)
    scores = torch.tensor([[0.9, 0.8]], dtype=torch.float64)
    kept, sc, labels = multiclass_nms(boxes, scores, 0.5, 0.5, 10)
    assert labels.tolist() == [0, 1]
    assert kept.tolist() == [[0, 0, 10, 10], [50, 50, 60, 60]]
    assert sc.tolist() == [0.9, 0.8]


def test_per_class_head_with_equal_boxes_is_the_agnostic_head() -> None:
    """Every class's deltas copied from a class-agnostic head: the same detections."""
    with float64():
        agnostic = tiny_model().eval()
        per_class = tiny_model(PER_CLASS).eval()
        state = agnostic.state_dict()
        for k, v in per_class.state_dict().items():
            if k.endswith(("reg.weight", "reg.bias")):
                state[k] = state[k].repeat(C, *([1] * (v.dim() - 1)))
                assert state[k].shape == v.shape
        per_class.load_state_dict(state)
        img = image()
        with torch.no_grad():
            (a,), (b,) = agnostic([img]), per_class([img])
    assert len(a) > 0
    torch.testing.assert_close(b.boxes, a.boxes, rtol=0, atol=1e-9)
    torch.testing.assert_close(b.scores, a.scores, rtol=0, atol=1e-12)
    assert b.labels.tolist() == a.labels.tolist()
    torch.testing.assert_close(b.masks, a.masks, rtol=0, atol=1e-9)


def test_per_class_head_trains_on_the_labels_deltas() -> None:
    model = tiny_model(PER_CLASS)
    assert model.box_heads[0].reg.out_features == 4 * C
    losses = model([image()], [targets()], seeds=[0])
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    grad = model.box_heads[0].reg.weight.grad.view(C, 4, -1).abs().sum((1, 2))  # (C,)
    labels = set(targets().labels.tolist())
    assert all(grad[c] > 0 for c in labels)  # the ground truth classes' boxes learn
    assert all(grad[c] == 0 for c in range(C) if c not in labels)  # no other class's
