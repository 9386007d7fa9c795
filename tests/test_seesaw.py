"""Seesaw loss: hand-computed cases, reduction to cross-entropy, gradients, per-stage counts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tailseg.models.losses import SeesawCounts, SeesawLoss, seesaw_loss


def logits_of(
    class_logits: list[float], objectness: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    return torch.tensor([[*class_logits, *objectness]], dtype=torch.float64)


def test_mitigation_by_hand() -> None:
    # C = 3, counts (100, 10, 1), class 0, zero logits: logits become (0, log .1, log .01)
    out = seesaw_loss(
        logits_of([0, 0, 0]), torch.tensor([0]), torch.tensor([100.0, 10.0, 1.0]), p=1.0, q=0.0
    )
    assert math.isclose(out["loss_cls"].item(), math.log(1.11), rel_tol=1e-12)
    assert math.isclose(out["loss_objectness"].item(), math.log(2), rel_tol=1e-12)
    # a rare class (2) is not mitigated against frequent ones: ratios N_j / N_2 > 1 → M = 1
    rare = seesaw_loss(
        logits_of([0, 0, 0]), torch.tensor([2]), torch.tensor([100.0, 10.0, 1.0]), p=1.0, q=0.0
    )
    assert math.isclose(rare["loss_cls"].item(), math.log(3), rel_tol=1e-12)


def test_compensation_by_hand() -> None:
    # class 0, logits (0, log 2, 0): σ = (1/4, 1/2, 1/4); σ_1 / σ_0 = 2 > 1 → C_01 = 2^q
    # with q = 1: logit 1 becomes log 2 + log 2 = log 4 → loss = log(1 + 4 + 1) = log 6
    out = seesaw_loss(
        logits_of([0, math.log(2), 0]), torch.tensor([0]), torch.ones(3), p=0.0, q=1.0
    )
    assert math.isclose(out["loss_cls"].item(), math.log(6), rel_tol=1e-12)


def test_equal_counts_and_zero_exponents_reduce_to_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(20, 7, dtype=torch.float64)
    labels = torch.randint(0, 6, (20,))  # 5 classes + background (5)
    counts = torch.full((5,), 3.0)
    out = seesaw_loss(logits, labels, counts, p=0.0, q=0.0)
    fg = labels < 5
    expected = F.cross_entropy(logits[fg, :5], labels[fg], reduction="sum") / 20
    torch.testing.assert_close(out["loss_cls"], expected)
    obj = F.cross_entropy(logits[:, 5:], (~fg).long(), reduction="sum") / 20
    torch.testing.assert_close(out["loss_objectness"], obj)
    # equal counts: mitigation is 1 whatever p
    torch.testing.assert_close(
        seesaw_loss(logits, labels, counts, p=0.8, q=0.0)["loss_cls"], expected
    )


def test_gradient_is_softmax_of_adjusted_logits_minus_onehot() -> None:
    torch.manual_seed(1)
    z = torch.randn(6, 4 + 2, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 3, 4, 2, 0])  # 4 = background
    counts = torch.tensor([50.0, 5.0, 1.0, 20.0])
    seesaw_loss(z, y, counts, p=0.8, q=2.0)["loss_cls"].backward()
    with torch.no_grad():  # the same adjustment, built independently
        zc, grad = z[:, :4], torch.zeros(6, 6, dtype=torch.float64)
        sigma = zc.softmax(1)
        for r in range(6):
            i = int(y[r])
            if i == 4:
                continue
            s = torch.ones(4, dtype=torch.float64)
            for j in range(4):
                if j != i:
                    m = (counts[j] / counts[i]) ** 0.8 if counts[j] < counts[i] else 1.0
                    ratio = sigma[r, j] / max(sigma[r, i], 1e-2)
                    s[j] = m * (ratio**2.0 if ratio > 1 else 1.0)
            prob = (zc[r] + s.log()).softmax(0)
            grad[r, :4] = (prob - F.one_hot(torch.tensor(i), 4)) / 6
    torch.testing.assert_close(z.grad, grad)


def test_no_foreground_gives_zero_class_loss() -> None:
    out = seesaw_loss(torch.randn(3, 5, requires_grad=True), torch.tensor([3, 3, 3]), torch.ones(3))
    assert out["loss_cls"].item() == 0.0 and out["loss_objectness"].item() > 0
    out["loss_cls"].backward()


def test_counts_buffer_and_probabilities() -> None:
    state = SeesawCounts(3)
    state.update(torch.tensor([0, 0, 2, 3, 3]))  # 3 = background, not counted
    assert state.counts.tolist() == [2.0, 0.0, 1.0]
    assert "counts" in state.state_dict()
    probs = SeesawLoss().probabilities(torch.randn(4, 5))
    assert probs.shape == (4, 3) and (probs.sum(1) <= 1 + 1e-6).all()


def test_htc_trains_with_seesaw_and_a_cosine_classifier() -> None:
    from tests.test_htc import image, targets, tiny_model

    model = tiny_model("model.roi.cls_loss=seesaw", "model.roi.classifier=cosine").train()
    losses = model([image()], [targets()])
    assert {"s0.loss_objectness", "s2.loss_cls"} <= set(losses)
    sum(losses.values()).backward()
    counts = model.state_dict()["cls_states.0.counts"]
    assert counts.sum() > 0 and counts.shape == (6,)
    (d,) = model.eval()([image()])
    assert len(d) > 0
