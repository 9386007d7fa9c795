"""RefineMask and Mask Scoring: the boundary region, the losses, the refinement, the IoU
target, and the heads inside HTC (chunking, batching, empty targets, bad configs)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tailseg.config import ConfigError
from tailseg.models.heads import MaskIoUHead, rois_with_batch_index
from tailseg.models.losses import (
    area_inside,
    area_ratio,
    boundary_region,
    mask_iou_loss,
    mask_iou_targets,
    refine,
    refinemask_loss,
    semantic_targets,
)
from tests.conftest import float64
from tests.test_htc import REFINE_MS, image, targets, tiny_model


def brute_force_region(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The definition, pixel by pixel: > 10% of the window (zeros outside) has the other label."""
    h, w = mask.shape
    out = torch.zeros(h, w, dtype=torch.bool)
    n = (2 * width + 1) ** 2
    for y, x in itertools.product(range(h), range(w)):
        other = 0
        for dy, dx in itertools.product(range(-width, width + 1), repeat=2):
            yy, xx = y + dy, x + dx
            v = int(mask[yy, xx]) if 0 <= yy < h and 0 <= xx < w else 0
            other += v != int(mask[y, x])
        out[y, x] = other > 0.1 * n
    return out


def hand_masks() -> torch.Tensor:
    m = torch.zeros(5, 9, 10)
    m[0, 2:7, 3:8] = 1  # a square inside
    m[1, :4, :5] = 1  # touching two image edges at a corner
    m[2, 1:8, 1:9] = 1
    m[2, 3:5, 4:6] = 0  # a hole
    m[3, 4, 6] = 1  # one pixel
    m[4] = 1  # everything: only the border (zeros outside) is boundary
    return m


@pytest.mark.parametrize("width", [1, 2])
def test_boundary_region_matches_the_definition_pixel_by_pixel(width: int) -> None:
    masks = hand_masks()
    got = boundary_region(masks, width)
    for i, m in enumerate(masks):
        assert torch.equal(got[i], brute_force_region(m, width)), i


def test_boundary_region_hand_cases() -> None:
    one = torch.zeros(1, 7, 7)
    one[0, 3, 3] = 1
    r1 = boundary_region(one, 1)[0]
    # width 1: a pixel needs ≥ 1 of 9 of the other label; the dot and its 8 neighbours
    assert r1.sum() == 9 and r1[2:5, 2:5].all()
    r2 = boundary_region(one, 2)[0]
    # width 2: ≥ 3 of 25 needed; the dot itself has 24 others, its neighbours see only 1
    assert r2.sum() == 1 and r2[3, 3]
    full = torch.ones(1, 6, 6)
    r = boundary_region(full, 1)[0]
    assert r[0].all() and r[-1].all() and r[:, 0].all() and not r[1:-1, 1:-1].any()
    assert not boundary_region(torch.zeros(2, 5, 5), 2).any()


def test_multi_resolution_loss_is_plain_bce_without_boundary_stages() -> None:
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(3, s, s, generator=g) for s in (14, 28)]
    tgts = [(torch.rand(3, s, s, generator=g) > 0.5).float() for s in (14, 28)]
    got = refinemask_loss(logits, tgts, (0.25, 0.5), (False, False))["loss_mask"]
    bce = F.binary_cross_entropy_with_logits  # torch's mean BCE: the plain definition
    want = 0.25 * bce(logits[0], tgts[0]) + 0.5 * bce(logits[1], tgts[1])
    torch.testing.assert_close(got, want)
    # HTC's head: one 28×28 output, weight 1 — exactly the summed BCE over its pixels / count
    one = refinemask_loss(logits[1:], tgts[1:], (1.0,), (False,))["loss_mask"]
    assert torch.equal(one, bce(logits[1], tgts[1], reduction="sum") / logits[1].numel())


def test_boundary_stage_sees_only_its_region() -> None:
    t28 = torch.zeros(1, 28, 28)
    t28[0, 8:20, 8:20] = 1
    t56 = F.interpolate(t28[None], scale_factor=2)[0]
    coarse = (t28 * 8 - 4).clone()  # a confident, correct previous stage
    fine = torch.randn(1, 56, 56, generator=torch.Generator().manual_seed(1))
    base = refinemask_loss([coarse, fine], [t28, t56], (1.0, 1.0), (False, True))["loss_mask"]
    region28 = boundary_region(t28, 2)
    region = F.interpolate(region28[None].float(), size=56, mode="bilinear", align_corners=True)
    region = region[0] >= 0.5
    changed = fine.clone()
    changed[~region] = 100.0  # wrong and confident, but outside the region
    other = refinemask_loss([coarse, changed], [t28, t56], (1.0, 1.0), (False, True))
    assert torch.equal(other["loss_mask"], base)
    changed[region] = 100.0  # inside: the loss moves
    assert (
        refinemask_loss([coarse, changed], [t28, t56], (1.0, 1.0), (False, True))["loss_mask"]
        > base + 1
    )


def test_boundary_region_of_the_previous_prediction_counts_too() -> None:
    t28 = torch.zeros(1, 28, 28)
    t28[0, 8:20, 8:20] = 1
    t56 = F.interpolate(t28[None], scale_factor=2)[0]
    coarse = torch.full((1, 28, 28), -4.0)
    coarse[0, 8:20, 2:14] = 4.0  # the previous stage predicts the square 6 px too far left
    fine = torch.zeros(1, 56, 56)
    loss = refinemask_loss([coarse, fine], [t28, t56], (0.0, 1.0), (False, True))["loss_mask"]

    def at_56(region: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(region[None].float(), size=56, mode="bilinear", align_corners=True)
        return up[0] >= 0.5

    # both regions are found at 28, joined, then upsampled (as the reference)
    from_target = boundary_region(t28, 2)
    from_pred = boundary_region((coarse >= 0).float(), 2)
    region = at_56(from_target | from_pred)
    only_pred = region & ~at_56(from_target)
    assert only_pred.any()
    changed = fine.clone()
    changed[only_pred] = 50.0  # pixels near the predicted edge, far from the true one
    moved = refinemask_loss([coarse, changed], [t28, t56], (0.0, 1.0), (False, True))
    assert moved["loss_mask"] > loss  # they are in the loss
    # the mean BCE over exactly that region (fine = 0: BCE = ln 2 everywhere)
    torch.testing.assert_close(loss, torch.tensor(0.6931471805599453), rtol=1e-6, atol=0)
    bce = F.binary_cross_entropy_with_logits(changed, t56, reduction="none")
    torch.testing.assert_close(moved["loss_mask"], bce[region].sum() / region.sum())


def test_inference_refines_from_28_not_14() -> None:
    g = torch.Generator().manual_seed(3)
    logits = [torch.randn(2, s, s, generator=g) for s in (14, 28, 56, 112)]
    logits[0] = torch.full((2, 14, 14), -5.0)  # a confident empty 14×14 mask: no boundary
    from tailseg.models.heads import RefineMaskHead

    assert torch.equal(RefineMaskHead.refined(logits), refine(logits[1:]))
    assert not torch.equal(RefineMaskHead.refined(logits), refine(logits))


def test_refinement_keeps_the_coarse_mask_outside_the_band() -> None:
    coarse = torch.full((1, 28, 28), -5.0)
    coarse[0, 6:22, 6:22] = 5.0
    finer = torch.randn(1, 56, 56, generator=torch.Generator().manual_seed(2))
    out = refine([coarse, finer])
    up = F.interpolate(coarse[None], size=56, mode="bilinear", align_corners=True)[0]
    band = boundary_region((coarse >= 0).float(), 1).float()
    inside = F.interpolate(band[None], size=56, mode="bilinear", align_corners=True)[0] > 0.5
    assert torch.equal(out[~inside], up[~inside])  # far from the edge: unchanged
    assert torch.equal(out[inside], finer[inside])  # at the edge: the finer stage
    assert 0 < inside.float().mean() < 0.5


def test_area_inside_and_mask_iou_target_by_hand() -> None:
    gt = torch.zeros(1, 20, 20, dtype=torch.bool)
    gt[0, 0:10, 0:10] = True  # 100 pixels; the RoI covers its right half
    box = torch.tensor([[5.0, 0.0, 15.0, 10.0]])  # pixel centres 5.5 .. 14.5: columns 5..14
    assert area_inside(gt, torch.tensor([0]), box).tolist() == [50.0]
    ratio = area_ratio(gt, torch.tensor([0]), box)
    assert ratio.tolist() == [0.5]
    # on a 4×4 grid of the RoI the ground truth fills the left half: 8 cells
    t = torch.zeros(1, 4, 4)
    t[0, :, :2] = 1
    pred = torch.zeros(1, 4, 4)
    pred[0, :, :3] = 0.9  # 12 cells predicted, 8 of them right
    # the instance counts 8 / 0.5 = 16 cells: IoU = 8 / (12 + 16 − 8) = 0.4 (not 8/12)
    iou = mask_iou_targets(pred, t, ratio)
    torch.testing.assert_close(iou, torch.tensor([0.4]))
    assert mask_iou_targets(pred, t, torch.tensor([0.0])).tolist() == [0.0]


def test_mask_iou_loss_counts_only_positive_targets() -> None:
    pred = torch.tensor([0.5, 0.2, 0.9], requires_grad=True)
    t = torch.tensor([0.7, 0.0, 0.5])
    loss = mask_iou_loss(pred, t, weight=0.5)["loss_mask_iou"]
    torch.testing.assert_close(loss, torch.tensor(0.5 * (0.2**2 + 0.4**2) / 2))
    zero = mask_iou_loss(pred, torch.zeros(3))["loss_mask_iou"]
    assert zero.item() == 0.0 and zero.requires_grad


def test_mask_iou_head_computes_only_each_rois_class_column() -> None:
    torch.manual_seed(0)
    head = MaskIoUHead(8, 5, conv_dim=8, fc_dim=16)
    x, probs = torch.randn(3, 8, 14, 14), torch.rand(3, 112, 112)
    labels = torch.tensor([4, 0, 2])
    got = head(x, probs, labels)
    # the definition: every class's output, then the label's column; the 112 mask area-resized
    small = F.avg_pool2d(probs[:, None], 4)
    h = torch.cat([x, F.max_pool2d(small, 2)], 1)
    for conv in head.convs:
        h = F.relu(conv(h))
    h = F.relu(head.fc2(F.relu(head.fc1(h.flatten(1)))))
    torch.testing.assert_close(got, head.iou(h)[torch.arange(3), labels])


def test_semantic_target_is_the_padded_union_at_stride_4() -> None:
    a = torch.zeros(2, 8, 12, dtype=torch.bool)
    a[0, :4, :4] = True
    a[1, 4:8, 8:12] = True
    b = torch.zeros(0, 6, 6, dtype=torch.bool)
    t = semantic_targets([a, b], (16, 16), 4)
    assert t.shape == (2, 4, 4)
    want = torch.zeros(4, 4)
    want[0, 0] = want[1, 2] = 1
    assert torch.equal(t[0], want) and not t[1].any()


def test_refinemask_training_losses_and_empty_targets() -> None:
    model = tiny_model(*REFINE_MS).train()
    losses = model([image()], [targets()])
    assert {"s2.loss_mask", "s2.loss_semantic", "s2.loss_mask_iou"} <= set(losses)
    assert "s0.loss_semantic" not in losses
    assert all(torch.isfinite(v) for v in losses.values())
    empty = model([image()], [targets(boxes=[])])
    for k in ("s2.loss_mask", "s2.loss_mask_iou", "s2.loss_bbox"):
        assert empty[k].item() == 0.0, k
    assert empty["s2.loss_semantic"] > 0  # every pixel is background, still a target
    sum(empty.values()).backward()


def test_a_batch_mixing_an_image_with_and_one_without_instances() -> None:
    model = tiny_model(*REFINE_MS).train()
    both = model([image(), image(80, 112, seed=1)], [targets(), targets(80, 112, boxes=[])])
    alone = model([image()], [targets()])
    assert all(torch.isfinite(v) for v in both.values())
    assert both["s2.loss_mask_iou"] >= 0 and both["s2.loss_semantic"] > 0
    # the positives all come from the first image: its masks, targets and IoU targets
    assert both["s2.loss_mask"] > 0 and alone["s2.loss_mask"] > 0
    sum(both.values()).backward()


def test_box_loss_weight_scales_classification_and_regression() -> None:
    one = tiny_model("model.roi.cls_loss=seesaw").train()
    two = tiny_model("model.roi.cls_loss=seesaw", "model.roi.box_loss_weight=2.0").train()
    a = one([image()], [targets()], seeds=[3])
    b = two([image()], [targets()], seeds=[3])
    for k in ("s0.loss_cls", "s0.loss_objectness", "s1.loss_bbox", "s2.loss_cls"):
        torch.testing.assert_close(b[k], 2 * a[k])
    torch.testing.assert_close(b["s0.loss_mask"], a["s0.loss_mask"])


def test_chunked_equals_unchunked_and_batch_equals_one_by_one() -> None:
    with float64():
        model = tiny_model(*REFINE_MS, "infer.max_per_img=20").eval()
        a, b = image(seed=2), image(80, 112, seed=3)
        together = model([a, b])
        alone = [model([a])[0], model([b])[0]]
        feats, _ = model.features([a])
        boxes = together[0].boxes
        labels = together[0].labels
        whole = model.masks(feats[:4], [boxes], labels)
        model.settings = type(model.settings)(**{**vars(model.settings), "mask_chunk": 3})
        chunked = model.masks(feats[:4], [boxes], labels)
    for x, y in zip(whole, chunked, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
    assert all(len(x) > 0 for x in together)
    for x, y in zip(together, alone, strict=True):
        assert torch.equal(x.labels, y.labels)
        torch.testing.assert_close(x.masks, y.masks, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(x.mask_scores, y.mask_scores, rtol=1e-9, atol=1e-12)


def test_mask_merge_last_and_mean() -> None:
    model = tiny_model(*REFINE_MS).eval()
    feats = [torch.randn(1, 64, 96 // s, 128 // s) for s in (4, 8, 16, 32)]
    boxes = torch.tensor([[10.0, 10.0, 60.0, 50.0], [20.0, 5.0, 90.0, 70.0]])
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        mean, _ = model.masks(feats, [boxes], labels)
        model.settings = type(model.settings)(**{**vars(model.settings), "mask_merge": "last"})
        last, _ = model.masks(feats, [boxes], labels)
        rois = rois_with_batch_index([boxes])
        x = model.mask_pool(feats, rois)
        ctx = [h.prepare(feats) for h in model.mask_heads]
        res, probs = None, []
        for head, c in zip(model.mask_heads, ctx, strict=True):
            logits, res = head(x, res, labels, rois, c)
            probs.append(head.refined(logits).sigmoid())
    torch.testing.assert_close(last, probs[-1])
    up = [F.interpolate(p[:, None], size=112, mode="bilinear")[:, 0] for p in probs[:2]]
    torch.testing.assert_close(mean, (up[0] + up[1] + probs[2]) / 3)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.roi.mask_heads=[refinemask,htc,htc]", "mask_heads[0]"),
        ("model.roi.mask_heads=[htc,htc]", "mask_heads"),
        ("model.roi.mask_heads=[htc,htc,fcn]", "mask_heads"),
    ],
)
def test_bad_mask_head_configs_are_named(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        tiny_model(override)
