"""Heads on hand-made tensors: the cosine classifier and the HTC mask head."""

from __future__ import annotations

import pytest
import torch

from tailseg.models.heads import CosineLinear, HTCMaskHead


def test_cosine_classifier_is_scaled_cosine_plus_a_learned_bias() -> None:
    cls = CosineLinear(2, 2, temperature=20.0)
    assert isinstance(cls.bias, torch.nn.Parameter) and cls.bias.requires_grad
    assert torch.equal(cls.bias.detach(), torch.zeros(2))  # starts at 0, as NormedLinear
    with torch.no_grad():
        cls.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # rows normalise to e1, e2
        cls.bias.copy_(torch.tensor([0.5, -1.0]))
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]])  # unit rows (0.6, 0.8) and (0, -1)
    logits = cls(x)
    # 20 · cosine, then + bias (the bias is not scaled by the temperature)
    torch.testing.assert_close(logits, torch.tensor([[12.5, 15.0], [0.5, -21.0]]))
    logits.sum().backward()
    assert torch.equal(cls.bias.grad, torch.tensor([2.0, 2.0]))
    assert "bias" in dict(cls.named_parameters())


def test_a_cosine_state_dict_without_bias_is_refused_by_name() -> None:
    old = {"weight": torch.randn(3, 4)}  # saved before the classifier had a bias
    with pytest.raises(RuntimeError, match="bias"):
        CosineLinear(4, 3).load_state_dict(old)


def mask_head(**kw: object) -> HTCMaskHead:
    torch.manual_seed(0)
    return HTCMaskHead(4, 8, conv_dim=4, num_convs=2, with_res=True, **kw)


def test_information_flow_adds_the_relu_of_the_1x1_conv() -> None:
    head = mask_head()
    prev = torch.rand(3, 4, 14, 14) + 0.1  # earlier heads' features (non-negative, as ReLU'd)
    x = torch.zeros(3, 4, 14, 14)
    with torch.no_grad():
        head.res.weight.copy_(-torch.eye(4)[:, :, None, None])  # the conv maps prev to < 0
        head.res.bias.zero_()
        # ReLU(conv_res(prev)) = 0: the stage sees its RoI features unchanged
        assert torch.equal(head.features(x, prev), head.features(x, None))
        head.res.weight.neg_()  # now conv_res(prev) = prev > 0, passed on as is
        assert torch.equal(head.features(x, prev), head.features(prev, None))
        (logits,), feat = head(x, prev)
    assert logits.shape == (3, 8, 28, 28) and feat.shape == (3, 4, 14, 14)


def test_mask_head_init_as_fcn_mask_head() -> None:
    torch.manual_seed(0)
    head = HTCMaskHead(16, 8, conv_dim=256, num_convs=1, with_res=True)
    convs = [*head.convs, head.res, head.upsample, head.logits]
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in convs)
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out channels · k²)); the logits' 1×1
    # kernels have 8 outputs → std 0.5 (mmdetection's FCNMaskHead.init_weights)
    assert 0.45 < float(head.logits.weight.detach().std()) < 0.55
    up = head.upsample.weight  # (in 256, out 256, 2, 2): fan_out as torch counts it, 256 · 4
    assert abs(float(up.detach().std()) - (2 / (256 * 4)) ** 0.5) < 0.003
