"""Heads on hand-made tensors: the cosine classifier and the HTC mask head."""

from __future__ import annotations

import pytest
import torch

from tailseg.models.heads import CosineLinear


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
