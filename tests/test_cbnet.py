"""CBNetV2 composite backbones: the composition (checked against its formula on the running
networks), checkpoint loading into both networks, the detector's assistant losses, and bad input.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from tailseg.config import load_config
from tailseg.models.backbones.cbnet import CBResNet, CBSwinTransformer
from tailseg.models.backbones.resnet import ResNet
from tailseg.models.backbones.swin import SwinTransformer
from tailseg.models.detectors.htc import _generator
from tests.conftest import float64
from tests.test_htc import TINY, TINY_SWIN, image, targets, tiny_model
from tests.test_swin import official_checkpoint

CB = "model.backbone.composite=true"


def tiny_cbswin(**kw: object) -> CBSwinTransformer:
    torch.manual_seed(0)
    nets = [SwinTransformer(16, (2, 2, 2, 2), (1, 2, 4, 8), window_size=4, **kw) for _ in "al"]
    return CBSwinTransformer(*nets)


def record_stage_io(net: torch.nn.Module, stages: list[torch.nn.Module]) -> list[list]:
    """Each stage's input tokens and outputs, as the composite runs them."""
    seen: list[list] = [[] for _ in stages]
    for i, stage in enumerate(stages):
        stage.register_forward_hook(lambda m, args, out, i=i: seen[i].append((args[0], out)))
    return seen


def tokens(level: torch.Tensor) -> torch.Tensor:
    return level.flatten(2).transpose(1, 2)  # (B, C, h, w) → (B, h·w, C)


def test_swin_lead_input_is_its_own_plus_the_assistants_level_when_links_are_zero() -> None:
    with float64():
        cb = tiny_cbswin()
        seen = record_stage_io(cb, list(cb.lead.layers))
        x = torch.rand(1, 3, 72, 88)
        a_outs, _ = cb.forward_pair(x)
        patch, _, _ = cb.assistant.patch_embed(x)
        for i in range(4):
            ((given, _),) = seen[i]
            own = patch if i == 0 else seen[i - 1][0][1][1]  # the previous stage's next input
            torch.testing.assert_close(given, own + tokens(a_outs[i]), rtol=0, atol=1e-12)


def test_swin_links_feed_higher_levels_and_learn() -> None:
    cb = tiny_cbswin()
    assert all(torch.all(c.weight == 0) and torch.all(c.bias == 0) for r in cb.links for c in r)
    assert [len(r) for r in cb.links] == [3, 2, 1, 0]  # j > i only; j = i is the identity
    opt = torch.optim.SGD(cb.parameters(), lr=0.1)
    sum(level.square().mean() for level in cb(torch.rand(2, 3, 64, 64))).backward()
    opt.step()
    assert all(c.weight.abs().sum() > 0 for r in cb.links for c in r)
    with torch.no_grad():  # now the higher levels change the lead's output
        x = torch.rand(1, 3, 64, 64)
        before = cb(x)
        for r in cb.links:
            for c in r:
                c.weight.zero_()
                c.bias.zero_()
        assert not torch.allclose(before[0], cb(x)[0])


def test_resnet_lead_shares_c2_and_starts_as_its_own_network() -> None:
    torch.manual_seed(0)
    cb = CBResNet(ResNet(14, 8, 1), ResNet(14, 8, 1))
    cb.train()
    x = torch.rand(1, 3, 64, 64)
    a, lead = cb.forward_pair(x)
    assert lead[0] is a[0]  # the lead has no stem and no first stage
    torch.testing.assert_close(lead[1], cb.lead.layer2(a[0]))  # zero BN γ, β: no feed yet
    assert [len(r) for r in cb.links] == [0, 3, 2, 1]  # strictly higher levels only
    bn = cb.links[1][0][1]
    assert not bn.training and torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    opt = torch.optim.SGD([p for p in cb.parameters() if p.requires_grad], lr=0.1)
    sum(level.square().mean() for level in cb(x)).backward()
    opt.step()
    assert bn.weight.abs().sum() > 0  # γ learns ...
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))  # ... statistics stay
    assert not torch.allclose(cb(x)[1], cb.lead.layer2(cb.assistant(x)[0]))


def test_one_swin_checkpoint_fills_both_networks_and_round_trips() -> None:
    src = SwinTransformer(16, (2, 2, 2, 2), (1, 2, 4, 8), window_size=4)
    cb = tiny_cbswin()
    cb.load_official(official_checkpoint(src))
    assert cb.lead.patch_embed is None
    for k, v in src.state_dict().items():
        if not k.startswith("norm"):
            assert torch.equal(cb.assistant.state_dict()[k], v), k
            if not k.startswith("patch_embed"):
                assert torch.equal(cb.lead.state_dict()[k], v), k
    assert all(torch.all(c.weight == 0) for r in cb.links for c in r)
    again = tiny_cbswin(drop_path=0.1)
    again.load_state_dict(cb.state_dict())
    for k, v in cb.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_one_torchvision_resnet_fills_both_networks() -> None:
    tv = torchvision.models.resnet50(weights=None).state_dict()
    cb = CBResNet(ResNet(50), ResNet(50))
    cb.load_torchvision(tv)
    assert torch.equal(cb.assistant.conv1.weight, tv["conv1.weight"])
    assert torch.equal(cb.lead.layer4[2].conv3.weight, tv["layer4.2.conv3.weight"])
    assert cb.lead.conv1 is None and cb.lead.layer1 is None


def test_checkpoint_that_does_not_fit_names_the_key() -> None:
    src = SwinTransformer(24, (2, 2, 2, 2), (1, 2, 4, 8), window_size=4)
    with pytest.raises(RuntimeError, match=r"size mismatch for layers\.0"):
        tiny_cbswin().load_official(official_checkpoint(src))


def test_cb_swin_l_counts_two_swin_l_minus_one_patch_embedding_plus_the_links() -> None:
    args = (192, (2, 2, 18, 2), (6, 12, 24, 48), 12)
    with torch.device("meta"):
        single = SwinTransformer(*args)
        cb = CBSwinTransformer(SwinTransformer(*args), SwinTransformer(*args))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    patch_embed = 3 * 192 * 16 + 192 + 2 * 192  # Conv2d(3, 192, 4, 4) and its LayerNorm
    c = [192, 384, 768, 1536]
    links = sum(c[j] * c[i] + c[i] for i in range(4) for j in range(i + 1, 4))
    assert links == 2_582_592  # CBNetV2's cb_linears for Swin-L (1×1 convs with bias)
    assert count(cb) == 2 * count(single) - patch_embed + links == 392_975_208


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    for ckpt in (False, True):
        with float64():
            torch.manual_seed(0)
            net = SwinTransformer(16, (2, 2, 2, 2), (1, 2, 4, 8), 4, 0.3, checkpoint=ckpt)
            torch.manual_seed(1)  # the same drop-path draws
            sum(level.sum() for level in net(torch.rand(2, 3, 40, 40))).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backbone", [(), TINY_SWIN], ids=["resnet", "swin"])
def test_assistant_losses_are_weighted_and_do_not_count_twice(backbone: tuple) -> None:
    losses = {}
    for w in (0.5, 1.0):
        model = tiny_model(*backbone, CB, f"model.assist_loss_weight={w}").train()
        calls = []
        for state in model.cls_states:
            state.update = lambda labels, calls=calls: calls.append(len(labels))
        losses[w] = model([image(), image()], [targets(), targets()], seeds=[3, 4])
        assert len(calls) == 3  # once per stage: the lead's pass alone counts classes
    lead = [k for k in losses[1.0] if not k.startswith("assist.")]
    assert {f"assist.{k}" for k in lead} == {k for k in losses[1.0] if k.startswith("assist.")}
    for k in losses[1.0]:
        want = losses[1.0][k] * (0.5 if k.startswith("assist.") else 1.0)
        torch.testing.assert_close(losses[0.5][k], want, rtol=1e-6, atol=0)


def test_inference_runs_the_neck_and_heads_on_the_lead_alone() -> None:
    model = tiny_model(CB, "infer.max_per_img=5").eval()
    calls = []
    model.neck.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    with torch.no_grad():
        (det,) = model([image()])
        feats, sizes = model.features([image()])  # the lead's pyramid
        proposals, _ = model.rpn(feats, sizes)
        (want,) = model.detect(feats[:4], proposals, sizes)
    assert calls == [4, 4]  # one pyramid per pass: the assistant's never reaches the neck
    assert len(det.boxes) > 0 and torch.equal(det.boxes, want.boxes)


def test_assistant_streams_are_independent_of_the_lead_and_stable() -> None:
    legacy = torch.Generator().manual_seed(12345)  # the single-backbone detector's stream
    assert torch.equal(
        torch.rand(4, generator=_generator(12345, 0)), torch.rand(4, generator=legacy)
    )
    a1, a2 = _generator(12345, 1), _generator(12345, 1)
    assert torch.equal(torch.rand(4, generator=a1), torch.rand(4, generator=a2))
    assert not torch.equal(
        torch.rand(4, generator=_generator(12345, 1)), torch.rand(4, generator=_generator(12345, 0))
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.backbone.cb_del_stages=2", "cb_del_stages"),
        ("model.backbone.checkpoint=true", "checkpoint"),
        ("model.assist_loss_weight=-1", "assist_loss_weight"),
    ],
)
def test_bad_composite_config_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        load_config(str(TINY), [CB, override])


def test_composite_of_two_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match="same Swin size"):
        CBSwinTransformer(
            SwinTransformer(16, (2, 2, 2, 2), (1, 2, 4, 8)),
            SwinTransformer(32, (2, 2, 2, 2), (1, 2, 4, 8)),
        )
    with pytest.raises(ValueError, match="same ResNet"):
        CBResNet(ResNet(14, 8), ResNet(14, 16))


def test_model_table_breaks_the_composite_down() -> None:
    from tailseg.cli.model import model_table

    rows = {name.strip(): t + f for name, t, f in model_table(tiny_model(CB))}
    parts = ("assistant", "lead (no stem of its own)", "composite connections")
    assert rows["backbone"] == sum(rows[p] for p in parts) > 0


def test_a_composite_checkpoint_in_a_single_backbone_model_names_the_key() -> None:
    from tailseg.engine.checkpoint import CheckpointError, load_weights

    weights = tiny_model(CB).state_dict()
    with pytest.raises(CheckpointError, match=r"model\.backbone\.composite"):
        load_weights(tiny_model(), weights, "cb.pt")
    with pytest.raises(CheckpointError, match=r"model\.backbone\.composite"):
        load_weights(tiny_model(CB), tiny_model().state_dict(), "single.pt")
