"""End to end: training learns; a killed run resumes to the same weights; DDP = one process.

All three train the tiny config on a small synthetic benchmark on the CPU.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tailseg.config import load_config
from tailseg.engine import checkpoint
from tailseg.engine.optim import build_optimizer
from tailseg.engine.trainer import train
from tailseg.models.build import build_model
from tests.conftest import float64
from tests.test_htc import image, targets

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = ("config.yaml", "metrics.jsonl", "curves.png", "best.pt", "last.pt", "metrics.json")
SMALL = [
    "model.num_classes=8",
    "data.synth.num_classes=8",
    "data.synth.train_images=160",
    "data.synth.val_images=30",
    "data.synth.min_side=96",
    "data.synth.max_side=128",
    "data.synth.max_objects=6",
    "data.augment.scale_range=[96,128]",
    "data.augment.mosaic_scale_range=[112,144]",
    "data.augment.max_size=192",
    "infer.short_side=112",
    "infer.max_size=192",
    "train.warmup_iters=30",
    "eval.challenge=false",
]


@pytest.mark.slow
def test_training_learns_masks(tmp_path: Path) -> None:
    """An untrained model scores ~0 mask AP; two short epochs must clearly beat that."""
    cfg = load_config(
        str(REPO / "tailseg" / "configs" / "tiny.yaml"),
        [*SMALL, "train.epochs=2", "train.lr_steps=[]"],
    )
    final = train(cfg, tmp_path, progress=False)
    assert final["segm"]["AP"] > 0.02, final
    for name in RUN_FILES:
        assert (tmp_path / name).exists(), name
    assert {"segm", "best_epoch"} <= set(final)


def _cmd(out: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tailseg.cli.main",
        "train",
        "tiny",
        "--out",
        str(out),
        "--no-progress",
        *SMALL,
        *extra,
    ]


SHORT = [
    "data.synth.train_images=12",
    "data.synth.val_images=2",
    "train.epochs=2",
    "train.checkpoint_every=2",
    "data.num_workers=0",
]

# Runs `tailseg train` and SIGKILLs itself halfway through writing its second checkpoint (after
# last.pt was rotated to last.prev.pt, half of the new file on disk): the worst moment to die,
# reached deterministically, whatever the machine's speed.
DIES_MID_WRITE = """
import os, signal, sys
from tailseg.cli.main import main
from tailseg.engine import checkpoint
real, written = checkpoint.atomic_write_bytes, []
def dying(path, data):
    if path.name == "last.pt":
        written.append(path)
        if len(written) == 2:
            path.with_name(".last.pt.partial.tmp").write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
checkpoint.atomic_write_bytes = dying
sys.exit(main(sys.argv[1:]))
"""


COMPOSITE = ("model.backbone.composite=true",)  # CBNetV2: the assistant's state and losses too


@pytest.mark.slow
@pytest.mark.parametrize("backbone", [(), COMPOSITE], ids=["resnet", "cb-resnet"])
def test_sigkill_mid_checkpoint_then_resume_gives_the_same_weights(
    tmp_path: Path, backbone: tuple[str, ...]
) -> None:
    def train_cli(out: Path, *extra: str, prefix: tuple[str, ...] = ("-m", "tailseg.cli.main")):
        return subprocess.run(
            [sys.executable, *prefix, *_cmd(out, [*SHORT, *backbone, *extra])[3:]],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )

    whole = train_cli(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    victim = train_cli(killed, prefix=("-c", DIES_MID_WRITE))
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    assert not (killed / "last.pt").exists() and (killed / "last.prev.pt").exists()
    assert checkpoint.load(killed / "last.prev.pt")["state"]["iter_in_epoch"] == 2
    resumed = train_cli(killed, "--resume")  # the dead run's lock is stale: taken over
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr and "last.prev.pt" in resumed.stderr
    a = checkpoint.load(tmp_path / "whole" / "last.pt")["model"]
    b = checkpoint.load(killed / "last.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


SAME_SIZE = [  # every sample 96×128, so batching (padding) cannot tell the layouts apart
    "data.synth.train_images=16",
    "data.synth.val_images=2",
    "data.augment.mosaic_prob=1.0",
    "data.augment.mosaic_scale_range=[96,96]",
    "data.augment.crop_prob=0.0",
    "train.epochs=1",
    "train.max_iters_per_epoch=3",
    "train.ema=false",
    "train.warmup_iters=0",
    "train.dtype=float64",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], nodes: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`args` under torchrun on 2 processes: one node of 2, or two "nodes" of 1 on this machine
    that meet through the c10d rendezvous, as separate machines would."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    if nodes == 1:
        launch = [torchrun, "--standalone", "--nproc_per_node", "2"]
        return subprocess.run(
            [*launch, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
        )
    endpoint = f"127.0.0.1:{_free_port()}"
    launch = [torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d"]
    launch += ["--rdzv_endpoint", endpoint, "--rdzv_id", "tailseg-test"]
    agents = [
        subprocess.Popen(
            [*launch, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(nodes)
    ]
    outs = [a.communicate(timeout=600) for a in agents]
    failed = [(a, o) for a, o in zip(agents, outs, strict=True) if a.returncode != 0]
    agent, (out, err) = (failed or list(zip(agents, outs, strict=True)))[0]
    return subprocess.CompletedProcess(agent.args, agent.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backbone", "nodes"),
    [((), 1), (COMPOSITE, 1), ((), 2)],
    ids=["resnet", "cb-resnet", "resnet-two-nodes"],
)
def test_two_processes_train_like_one_with_twice_the_batch(
    tmp_path: Path, backbone: tuple[str, ...], nodes: int
) -> None:
    """2 processes × batch 2 train like 1 process × batch 4: same losses, same weights — on one
    node, or on two (`torchrun --nnodes 2 --rdzv_backend c10d`, both here).

    Why float64: a batch of 4 and a batch of 2 run different CPU kernels (blocking, vector
    width), so their float32 features differ by ~1e-7 relative, and on some CPUs that flips a
    discrete choice (proposal NMS, top-k, RoI sampling) and the runs diverge. In float64 the
    kernel noise is ~1e-16 relative, far below any margin those choices have on this data, so
    the runs take the same decisions on every CPU and what is compared is the arithmetic of
    data parallelism itself: per-image loss normalisation, Seesaw counts, gradient averaging.
    The tolerances are ≥ 1e8 times the float64 noise (measured on an AMD EPYC: losses 5e-16
    relative, weights 1e-14 apart) and ≥ 1e3 times below what one flipped choice changes
    (~1e-3 relative in the loss, ~lr = 4e-4 in a weight).
    """
    base = ["-m", "tailseg.cli.main", "train", "tiny", "--no-progress", *SMALL, *SAME_SIZE]
    base += backbone
    one = subprocess.run(
        [sys.executable, *base, "--out", str(tmp_path / "one"), "train.batch_size=4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = _torchrun([*base, "--out", str(tmp_path / "two"), "train.batch_size=2"], nodes, env)
    assert two.returncode == 0, two.stderr[-3000:]
    a = checkpoint.load(tmp_path / "one" / "last.pt")
    b = checkpoint.load(tmp_path / "two" / "last.pt")
    assert a["state"]["global_iter"] == b["state"]["global_iter"] == 3
    la, lb = a["state"]["history"][0], b["state"]["history"][0]
    keys = [k for k in la if k.startswith(("loss", "rpn.", "s0.", "s1.", "s2.", "assist."))]
    assert len(keys) >= 10 and "s2.loss_mask" in keys
    assert ("assist.s2.loss_mask" in keys) == bool(backbone)
    for key in keys:
        assert la[key] == pytest.approx(lb[key], rel=1e-7, abs=1e-9), key  # same losses
    floats = [k for k, v in a["model"].items() if v.dtype.is_floating_point]
    assert all(a["model"][k].dtype == torch.float64 for k in floats)
    worst = max(float((a["model"][k] - b["model"][k]).abs().max()) for k in floats)
    assert worst <= 1e-6, worst  # same weights (Adam has moved them by ~3·lr = 1.2e-3)
    moved = max(
        float((a["model"][k] - c).abs().max()) for k, c in _initial(tmp_path, backbone).items()
    )
    assert moved > 1e-4  # and they did train


def _initial(tmp_path: Path, backbone: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The weights the runs started from (same seed, float64)."""
    overrides = [*SMALL, *SAME_SIZE, *backbone]
    cfg = load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), overrides)
    with float64():
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, cfg.infer)
    return {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}


TINY_RUN = [
    *SMALL,
    "data.synth.train_images=12",
    "data.synth.val_images=3",
    "train.epochs=1",
    "train.max_iters_per_epoch=4",
    "train.checkpoint_every=1",
]


@pytest.mark.slow
def test_non_finite_loss_stops_naming_step_and_term(tmp_path: Path, monkeypatch) -> None:
    from tailseg.engine.trainer import TrainingError
    from tailseg.models.detectors.htc import HybridTaskCascade

    forward = HybridTaskCascade.forward
    calls = {"n": 0}

    def poisoned(self, images, targets=None, seeds=None):
        out = forward(self, images, targets, seeds)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 3:
                out["s1.loss_mask"] = out["s1.loss_mask"] * float("nan")
        return out

    monkeypatch.setattr(HybridTaskCascade, "forward", poisoned)
    cfg = load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), TINY_RUN)
    with pytest.raises(
        TrainingError, match=r"step 2 \(epoch 0, iteration 2\): s1\.loss_mask = nan"
    ):
        train(cfg, tmp_path, progress=False)
    state = checkpoint.load(tmp_path / "last.pt")["state"]
    assert state["global_iter"] == 2  # the last good step is kept


@pytest.mark.slow
def test_demo_writes_every_artefact(tmp_path: Path, capsys) -> None:
    from tailseg.cli.main import main

    out = tmp_path / "demo"
    assert (
        main(["demo", "tiny", *TINY_RUN, "--out", str(out), "--images", "2", "--no-progress"]) == 0
    )
    printed = capsys.readouterr().out
    assert "mask AP" in printed and "AP‡" in printed
    for name in (*RUN_FILES, "train_long_tail.png"):
        assert (out / name).exists(), name
    assert len(list((out / "predictions").glob("*.png"))) == 2


@pytest.mark.slow
def test_swin_large_recipe_takes_a_training_step() -> None:
    """The report's Swin-L recipe, as shipped (Swin-L, Seesaw, cosine classifier, box-loss
    weight 2), builds, takes an AdamW step with its parameter groups, and infers, on a small
    image with 8 classes. The trainer around a model is tested end to end on the tiny config."""
    cfg = load_config(
        str(REPO / "tailseg" / "configs" / "htc_swin_l_fpn_lvis.yaml"),
        ["model.num_classes=8", "infer.max_per_img=20"],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.infer).train()
    assert sum(p.numel() for p in model.parameters()) > 190e6  # Swin-L alone has 197M
    assert "cls_states.0.counts" in model.state_dict()  # Seesaw's class counts
    optimizer = build_optimizer(model, cfg.train.lr, cfg.train.weight_decay, cfg.train.no_decay)
    before = {k: v.clone() for k, v in model.state_dict().items() if "counts" in k}
    losses = model([image()], [targets()], [0])
    total = sum(losses.values())
    assert torch.isfinite(total) and {"s2.loss_mask", "rpn.loss_cls"} <= set(losses)
    total.backward()
    optimizer.step()
    assert any(not torch.equal(before[k], model.state_dict()[k]) for k in before)
    model.eval()
    with torch.no_grad():
        (det,) = model([image()])
    assert len(det.scores) <= 20
