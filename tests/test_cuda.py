"""The GPU path (skipped without CUDA): the same model, losses and training loop on a CUDA device.

Comparisons run in float64 (no TF32, ~1e-16 kernel noise), so CPU and GPU take the same
discrete decisions (NMS, top-k, sampling) and must agree number for number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tailseg.config import load_config
from tailseg.engine import checkpoint
from tailseg.engine.trainer import train
from tests.conftest import float64
from tests.test_htc import REFINE_MS, image, targets, tiny_model
from tests.test_train_e2e import REPO, SMALL

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.mark.parametrize("heads", [(), REFINE_MS], ids=["htc", "refinemask+ms"])
def test_losses_and_gradients_on_cuda_equal_cpu(heads: tuple[str, ...]) -> None:
    with float64():
        cpu = tiny_model(*heads).train()
        gpu = tiny_model(*heads).train().to(CUDA)
        a = cpu([image()], [targets()], seeds=[7])
        b = gpu([image().to(CUDA)], [targets().to(CUDA)], seeds=[7])
        assert set(a) == set(b)
        for k in a:
            assert b[k].device.type == "cuda", k
            torch.testing.assert_close(b[k].cpu(), a[k], rtol=1e-9, atol=1e-12, msg=k)
        sum(a.values()).backward()
        sum(b.values()).backward()
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        if p.grad is not None:
            torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-7, atol=1e-10, msg=name)


@pytest.mark.parametrize("heads", [(), REFINE_MS], ids=["htc", "refinemask+ms"])
def test_inference_on_cuda_equals_cpu(heads: tuple[str, ...]) -> None:
    with float64():
        cpu = tiny_model("infer.max_per_img=30", *heads).eval()
        gpu = tiny_model("infer.max_per_img=30", *heads).eval().to(CUDA)
        with torch.no_grad():
            (x,) = cpu([image(seed=4)])
            (y,) = gpu([image(seed=4).to(CUDA)])
    assert y.boxes.device.type == "cuda"
    assert torch.equal(x.labels, y.labels.cpu())
    torch.testing.assert_close(y.scores.cpu(), x.scores, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(y.boxes.cpu(), x.boxes, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y.masks.cpu(), x.masks, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_training_runs_on_cuda(tmp_path: Path, amp: str) -> None:
    """The trainer on the GPU in FP32 and both mixed precisions: finite losses, weights that
    moved, an evaluation, and a checkpoint that loads on the CPU."""
    overrides = [*SMALL, "train.epochs=1", "train.max_iters_per_epoch=4", "train.device=cuda"]
    overrides += [f"train.amp={amp}", "data.synth.train_images=16", "data.synth.val_images=4"]
    cfg = load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), overrides)
    final = train(cfg, tmp_path, progress=False)
    assert "segm" in final
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["state"]["global_iter"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    row = state["state"]["history"][0]
    assert all(v == v for k, v in row.items() if k.startswith("loss"))  # not NaN


def test_targets_pin_and_copy_without_blocking() -> None:
    t = targets().pin_memory()
    assert t.boxes.is_pinned() and t.masks.is_pinned() and t.neg_labels.is_pinned()
    g = t.to(CUDA, non_blocking=True)
    torch.cuda.synchronize()
    assert g.masks.device.type == "cuda" and torch.equal(g.masks.cpu(), targets().masks)
    assert g.image_size == t.image_size and g.image_id == t.image_id
