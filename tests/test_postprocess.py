"""Class-wise NMS and mask pasting, by hand."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import torch

from tailseg.models.detectors.postprocess import multiclass_nms
from tailseg.structures.detections import InstanceDetections


def test_multiclass_nms_by_hand() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]])
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.7], [0.00001, 0.6]])
    b, s, lab = multiclass_nms(boxes, scores, score_thr=1e-4, iou_thr=0.5, max_dets=10)
    # class 0: boxes 0 and 1 overlap (IoU 0.81) → 0 kept; box 2 below the threshold
    # class 1: boxes 1 and 2 do not overlap → both kept
    assert s.tolist() == [0.8999999761581421, 0.699999988079071, 0.6000000238418579]
    assert lab.tolist() == [0, 1, 1]
    assert torch.equal(b[1], boxes[1])
    _, s2, _ = multiclass_nms(boxes, scores, 1e-4, 0.5, max_dets=2)
    assert len(s2) == 2


def test_pasting_a_full_mask_fills_its_box() -> None:
    d = InstanceDetections(
        boxes=torch.tensor([[2.0, 3.0, 12.0, 9.0], [15.0, 0.0, 40.0, 30.0]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 1]),
        masks=torch.stack([torch.ones(28, 28), torch.zeros(28, 28)]),
        image_size=(20, 30),
    )
    rles = d.to_rles(chunk=1)
    m0 = mask_utils.decode(rles[0]).astype(bool)
    expected = np.zeros((20, 30), bool)
    expected[3:9, 2:12] = True
    assert np.array_equal(m0, expected)
    assert mask_utils.area(rles[1]) == 0


def test_pasting_keeps_the_mask_shape_and_rescales() -> None:
    left = torch.zeros(28, 28)
    left[:, :14] = 1.0  # left half of the box
    d = InstanceDetections(
        torch.tensor([[0.0, 0.0, 20.0, 10.0]]),
        torch.tensor([1.0]),
        torch.tensor([0]),
        left[None],
        (10, 20),
    )
    m = mask_utils.decode(d.to_rles()[0]).astype(bool)
    assert m[:, :10].all() and not m[:, 10:].any()
    big = d.rescale((20, 40))
    assert big.boxes.tolist() == [[0.0, 0.0, 40.0, 20.0]]
    m2 = mask_utils.decode(big.to_rles()[0]).astype(bool)
    assert m2[:, :20].all() and not m2[:, 20:].any()


def test_bitmaps_equal_the_decoded_rles() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(5, 2, generator=g) * 30
    d = InstanceDetections(
        torch.cat([xy, xy + 5 + torch.rand(5, 2, generator=g) * 20], 1),
        torch.rand(5, generator=g),
        torch.zeros(5, dtype=torch.long),
        torch.rand(5, 28, 28, generator=g),
        (40, 50),
    )
    rles = d.to_rles()
    keep = torch.tensor([4, 1])
    got = d.bitmaps(keep)
    for j, i in enumerate(keep.tolist()):
        assert np.array_equal(got[j].numpy(), mask_utils.decode(rles[i]).astype(bool))
    assert d.bitmaps(torch.zeros(0, dtype=torch.long)).shape == (0, 40, 50)
