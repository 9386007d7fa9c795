"""HTC on the tiny config: losses, empty targets, gradients, batching, inference outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailseg.config import load_config
from tailseg.models.build import build_model
from tailseg.models.detectors.htc import HybridTaskCascade
from tailseg.structures import Targets
from tests.conftest import float64

TINY = Path(__file__).resolve().parents[1] / "tailseg" / "configs" / "tiny.yaml"
C = 6
TINY_SWIN = (  # a Swin backbone small enough for unit tests
    "model.backbone.kind=swin",
    "model.backbone.embed_dim=16",
    "model.backbone.depths=[2,2,2,2]",
    "model.backbone.num_heads=[1,2,4,8]",
    "model.backbone.window_size=4",
)
REFINE_MS = ("model.roi.mask_heads=[htc,htc,refinemask]", "model.roi.mask_scoring=true")


def tiny_model(*overrides: str) -> HybridTaskCascade:
    """The tiny config's HTC with a plain softmax head (tests of Seesaw ask for it) and HTC's
    own mask heads (tests of RefineMask and Mask Scoring add REFINE_MS)."""
    torch.manual_seed(0)
    plain = [
        "model.roi.cls_loss=softmax",
        "model.roi.classifier=linear",
        "model.roi.mask_heads=[htc,htc,htc]",
        "model.roi.mask_scoring=false",
    ]
    cfg = load_config(str(TINY), [f"model.num_classes={C}", *plain, *overrides])
    return build_model(cfg.model, cfg.infer)


def targets(h: int = 96, w: int = 128, boxes: list[list[int]] | None = None) -> Targets:
    boxes = boxes if boxes is not None else [[10, 20, 50, 70], [60, 10, 120, 40]]
    masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        masks[i, y0:y1, x0:x1] = True
    none = torch.zeros(0, dtype=torch.long)
    return Targets(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.arange(len(boxes)) % C,
        masks,
        torch.zeros(len(boxes), dtype=torch.bool),
        1,
        (h, w),
        none,
        none,
    )


def image(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(seed)).to(
        torch.uint8
    )


def test_training_returns_named_stage_losses() -> None:
    model = tiny_model().train()
    losses = model([image()], [targets()])
    expected = {"rpn.loss_cls", "rpn.loss_bbox"} | {
        f"s{i}.{k}" for i in range(3) for k in ("loss_cls", "loss_bbox", "loss_mask")
    }
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())


def test_empty_targets_give_zero_box_and_mask_losses() -> None:
    model = tiny_model().train()
    losses = model([image()], [targets(boxes=[])])
    for k, v in losses.items():
        if k.endswith(("loss_bbox", "loss_mask")):
            assert v.item() == 0.0, k
    assert losses["s0.loss_cls"] > 0 and losses["rpn.loss_cls"] > 0
    sum(losses.values()).backward()  # no crash, a graph exists


@pytest.mark.parametrize("heads", [(), REFINE_MS], ids=["htc", "refinemask+ms"])
def test_gradient_reaches_every_trainable_parameter(heads: tuple[str, ...]) -> None:
    model = tiny_model(*heads).train()
    losses = model([image(), image(seed=1)], [targets(), targets(boxes=[[30, 30, 90, 80]])])
    sum(losses.values()).backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert missing == []


def test_crowd_regions_are_not_training_targets() -> None:
    model = tiny_model().train()
    t = targets()
    t.iscrowd[:] = True
    torch.manual_seed(1)
    losses = model([image()], [t])
    assert losses["s0.loss_mask"].item() == 0.0 and losses["s0.loss_bbox"].item() == 0.0


def test_inference_outputs_typed_detections() -> None:
    model = tiny_model("infer.max_per_img=50").eval()
    (d,) = model([image()])
    assert len(d) == 50 and d.image_size == (96, 128)
    assert d.boxes.shape == (50, 4) and d.masks.shape == (50, 28, 28)
    assert (d.labels >= 0).all() and (d.labels < C).all()
    assert (d.scores[:-1] >= d.scores[1:]).all()  # sorted
    assert (d.masks >= 0).all() and (d.masks <= 1).all()
    assert (d.boxes[:, 2] <= 128).all() and (d.boxes[:, 3] <= 96).all()


def test_batched_equals_per_image() -> None:
    with float64():  # batch 2 and batch 1 run different kernels: see conftest.float64
        model = tiny_model("infer.max_per_img=20").eval()
        a, b = image(seed=2), image(seed=3)
        together = model([a, b])
        alone = [model([a])[0], model([b])[0]]
    for x, y in zip(together, alone, strict=True):
        assert x.scores.dtype == torch.float64
        torch.testing.assert_close(x.scores, y.scores, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(x.boxes, y.boxes, rtol=1e-9, atol=1e-9)
        assert torch.equal(x.labels, y.labels)
        torch.testing.assert_close(x.masks, y.masks, rtol=1e-9, atol=1e-9)


def test_training_requires_targets() -> None:
    with pytest.raises(ValueError, match="one Targets per image"):
        tiny_model().train()([image()])


@pytest.mark.slow
def test_overfits_two_images() -> None:
    """A few dozen steps on two images: the total loss falls by a clear factor."""
    model = tiny_model().train()
    images = [image(seed=5), image(seed=6)]
    tg = [targets(), targets(boxes=[[30, 30, 90, 80]])]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(40):
        losses = model(images, tg)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert sum(history[-5:]) / 5 < 0.4 * sum(history[:5]) / 5, history


def test_swin_backbone_trains_and_infers_through_htc() -> None:
    model = tiny_model(*TINY_SWIN, "infer.max_per_img=10").train()
    losses = model([image()], [targets()])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.patch_embed.proj.weight.grad is not None
    (d,) = model.eval()([image(80, 100)])
    assert len(d) == 10 and d.masks.shape == (10, 28, 28)


def test_masks_of_shared_boxes_are_computed_once_and_equal() -> None:
    model = tiny_model().eval()
    feats = [torch.randn(1, 64, 96 // s, 128 // s) for s in (4, 8, 16, 32)]
    box = torch.tensor([[10.0, 10.0, 60.0, 50.0], [20.0, 5.0, 90.0, 70.0]])
    boxes = box[[0, 1, 0, 0]]  # box 0 kept for three classes
    labels = torch.tensor([1, 2, 3, 1])
    with torch.no_grad():
        got, ious = model.masks(feats, [boxes], labels)
        assert ious is None  # no Mask Scoring
        rois = torch.cat([torch.zeros(4, 1), boxes], 1)
        x = model.mask_pool(feats, rois)
        res, acc = None, 0
        for head in model.mask_heads:  # every class channel, then pick: the plain definition
            (logits,), res = head(x, res)
            acc = acc + logits[torch.arange(4), labels].sigmoid()
    torch.testing.assert_close(got, acc / 3)
    torch.testing.assert_close(got[0], got[3])


def test_targets_to_keeps_every_field() -> None:
    t = targets()
    u = t.to("cpu", non_blocking=True)
    assert u.image_id == t.image_id and u.image_size == t.image_size
    for name in ("boxes", "labels", "masks", "iscrowd", "neg_labels", "not_exhaustive_labels"):
        assert torch.equal(getattr(u, name), getattr(t, name)), name
