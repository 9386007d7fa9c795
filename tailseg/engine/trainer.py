"""`train(cfg, run_dir)`: the training run, from data to the best checkpoint and its metrics.

Every random choice is a function of (seed, epoch, position in the epoch): the repeat-factor
order, each sample's augmentation and each image's anchor/RoI sampling. A run killed at any
point and resumed from its last checkpoint therefore ends with the same weights as one that
never stopped, and N processes with batch b train like one process with batch N·b.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import platform
import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tailseg.config import Config, ConfigError, TrainConfig, dump, to_dict
from tailseg.data import AnnotationFile, DataError, InstanceDataset
from tailseg.data.sampling import RepeatFactorSampler, repeat_factors
from tailseg.data.splits import split_files
from tailseg.data.transforms.pipeline import AugmentedDataset
from tailseg.engine import checkpoint
from tailseg.engine import distributed as dist
from tailseg.engine.ema import ModelEMA
from tailseg.engine.evaluate import evaluate_predictions, predict_split
from tailseg.engine.optim import build_optimizer, lr_factor
from tailseg.engine.run_dir import RunDirError, claim
from tailseg.engine.tensorboard import ScalarLog
from tailseg.errors import TrainingError
from tailseg.models.build import build_model
from tailseg.utils.files import atomic_write_json, atomic_write_text
from tailseg.viz.curves import plot_curves

log = logging.getLogger("tailseg.engine")


@dataclass
class RunState:
    epoch: int = 0
    iter_in_epoch: int = 0
    global_iter: int = 0
    best_value: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_count: int = 0


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, 7, epoch, position]).generate_state(1, np.uint64)[0])


def scaled_lr(tc: TrainConfig, world_size: int) -> float:
    """`train.lr`, scaled linearly when the total batch differs from `train.lr_reference_batch`."""
    total = world_size * tc.batch_size
    if tc.lr_reference_batch is None or total == tc.lr_reference_batch:
        return tc.lr
    lr = tc.lr * total / tc.lr_reference_batch
    log.warning(
        "total batch %d (%d processes × %d) differs from train.lr_reference_batch %d: "
        "lr %.3g scaled linearly to %.3g",
        total,
        world_size,
        tc.batch_size,
        tc.lr_reference_batch,
        tc.lr,
        lr,
    )
    return lr


def _environment(d: dist.Dist) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": str(d.device),
        "world_size": d.world_size,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Train, evaluating every epoch; returns the final metrics (those of `metrics.json`).

    The run folder is claimed first (`engine.run_dir.claim`): an earlier run in it is kept
    unless `resume` or `overwrite` says otherwise, and a second run cannot enter it meanwhile.
    """
    run_dir = Path(run_dir)
    d = dist.init(cfg.train.device)
    with ExitStack() as held:
        refused = None
        if d.is_main:  # one rank owns the folder; every rank learns whether it may go on
            try:
                held.enter_context(claim(run_dir, resume=resume, overwrite=overwrite))
            except RunDirError as e:
                refused = e
        if not dist.all_true(d, refused is None):
            dist.shutdown(d)
            raise refused or RunDirError(f"{run_dir}: refused by rank 0")
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, cfg.train.dtype))  # float64: numerical checks
        try:
            return _train(cfg, run_dir, d, resume=resume, progress=progress)
        finally:
            torch.set_default_dtype(default_dtype)


def _train(cfg: Config, run_dir: Path, d: dist.Dist, *, resume: bool, progress: bool) -> dict:
    tc, aug = cfg.train, cfg.data.augment
    torch.manual_seed(tc.seed)
    found = checkpoint.load_last_good(run_dir) if resume else None
    if found is not None:  # before anything is written or generated: same model and data?
        _check_resumable(*found, cfg)
    elif resume:
        log.warning("%s: nothing to resume from; starting a new run", run_dir)
    if d.is_main:
        atomic_write_text(run_dir / "config.yaml", dump(cfg))
        atomic_write_json(run_dir / "environment.json", _environment(d), indent=1)

    # data: repeat-factor order, augmentation, validation ground truth
    if d.is_main:  # one rank makes a synthetic benchmark, the others wait for it
        split_files(cfg, "train", run_dir / "data", progress=progress)
    dist.barrier(d)
    train_json, train_images = split_files(cfg, "train", run_dir / "data")
    val_json, val_images = split_files(cfg, "val", run_dir / "data")
    outside = cfg.data.allow_outside_root
    base = InstanceDataset(
        train_json, train_images, only_annotated=True, allow_outside_root=outside
    )
    val = InstanceDataset(val_json, val_images, allow_outside_root=outside)
    gt_val = AnnotationFile.load(val_json, keep_degenerate=True)
    if base.ann.category_ids != gt_val.category_ids:
        raise DataError(f"{val_json}: categories differ from {train_json}'s")
    if cfg.model.num_classes != base.num_classes:
        raise ConfigError(
            f"config: model.num_classes: {cfg.model.num_classes}, but {train_json} has "
            f"{base.num_classes} categories"
        )
    if d.is_main:  # a missing image must stop the run now, not after an epoch of training
        problem = None
        try:
            base.check_images(progress)
            val.check_images(progress)
        except DataError as e:
            problem = e
    if not dist.all_true(d, not d.is_main or problem is None):
        raise problem if d.is_main and problem else DataError("rank 0 found unusable images")
    factors = repeat_factors(base.ann, aug.rfs_threshold)
    sampler = RepeatFactorSampler(
        factors, seed=tc.seed, mode=aug.rfs_mode, num_replicas=d.world_size, rank=d.rank
    )
    data = AugmentedDataset(base, factors, aug, seed=tc.seed)

    # model, EMA, optimiser, schedule
    model = build_model(cfg.model, cfg.infer).to(d.device)
    ema = ModelEMA(model, tc.ema_momentum, tc.ema_gamma) if tc.ema else None
    optimizer = build_optimizer(model, scaled_lr(tc, d.world_size), tc.weight_decay, tc.no_decay)
    per_epoch = -(-len(sampler) // tc.batch_size)
    if tc.max_iters_per_epoch is not None:
        per_epoch = min(per_epoch, tc.max_iters_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_factor(it, per_epoch, tc.warmup_iters, tc.warmup_ratio, tc.lr_steps),
    )
    state = RunState()
    if found is not None:
        path, ck = found
        try:
            checkpoint.load_weights(model, ck["model"], path)
            if ema is not None and ck.get("ema") is not None:
                ema.load_state_dict(ck["ema"])
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            state = RunState(**ck["state"])
            torch.set_rng_state(ck["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise checkpoint.CheckpointError(
                f"{path}: does not fit this run's model and optimiser ({first})"
            ) from None
        if d.is_main:
            log.info(
                "resumed from %s at epoch %d, iteration %d",
                path,
                state.epoch,
                state.iter_in_epoch,
            )
    net = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[d.device.index] if d.device.type == "cuda" else None,
            broadcast_buffers=False,
        )
    scaler = torch.amp.GradScaler(d.device.type, enabled=tc.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.amp)

    def save_last() -> Path:
        ck = {
            "model": model.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": state.__dict__,
            "rng": torch.get_rng_state(),
            "config": to_dict(cfg),
            "categories": checkpoint.category_entries(base.ann.categories),
        }
        path = run_dir / "last.pt"
        if d.is_main:
            checkpoint.save(path, ck, keep_previous=True)
        return path

    scalars = ScalarLog(run_dir) if d.is_main else None
    stop = False
    while state.epoch < tc.epochs and not stop:
        epoch = state.epoch
        sampler.set_epoch(epoch)
        data.set_epoch(epoch)
        indices = list(sampler)
        batches = [indices[k : k + tc.batch_size] for k in range(0, len(indices), tc.batch_size)]
        batches = batches[:per_epoch]
        net.train()
        bar = tqdm(
            range(state.iter_in_epoch, len(batches)),
            desc=f"epoch {epoch}",
            disable=not (progress and d.is_main),
            leave=False,
        )
        t0, seen = time.perf_counter(), 0
        pin = d.device.type == "cuda"  # workers' batches land in page-locked memory
        loader = _batches(data, batches[state.iter_in_epoch :], cfg.data.num_workers, pin)
        for it, samples in zip(bar, loader, strict=True):
            batch = batches[it]
            images = [s[0].to(d.device, non_blocking=True) for s in samples]
            targets = [s[1].to(d.device, non_blocking=True) for s in samples]
            positions = [
                (it * tc.batch_size + j) * d.world_size + d.rank for j in range(len(batch))
            ]
            seeds = [sample_seed(tc.seed, epoch, p) for p in positions]
            cast = torch.autocast(d.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            with cast:
                losses = net(images, targets, seeds)
            total = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            # The step's one device → host copy: every loss value and whether all ranks' losses
            # are finite, read after backward has been queued (the weights are still untouched).
            values = torch.stack(  # float64: the logged values as exact as the losses
                [total.detach().double(), *(v.detach().double() for v in losses.values())]
            )
            finite = torch.isfinite(values).all().float().reshape(1)
            if d.enabled:  # every rank stops together, or none does
                torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            on_host = torch.cat([finite, values]).tolist()
            step_total, step_losses = on_host[1], dict(zip(losses, on_host[2:], strict=True))
            if not on_host[0]:
                bad = [f"{k} = {v}" for k, v in step_losses.items() if not math.isfinite(v)]
                last = run_dir / "last.pt"
                raise TrainingError(
                    f"non-finite loss at step {state.global_iter} (epoch {epoch}, iteration {it}):"
                    f" {', '.join(bad) or 'on another rank'}; last good checkpoint: "
                    f"{last if last.exists() else 'none yet'} (resume with --resume)"
                )
            if tc.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            for k, v in step_losses.items():
                state.loss_sums[k] = state.loss_sums.get(k, 0.0) + v
            state.loss_sums["loss"] = state.loss_sums.get("loss", 0.0) + step_total
            state.loss_count += 1
            state.global_iter += 1
            state.iter_in_epoch = it + 1
            seen += len(batch) * d.world_size
            bar.set_postfix(
                loss=f"{step_total:.3f}",
                lr=f"{scheduler.get_last_lr()[0]:.2e}",
                img_s=f"{seen / (time.perf_counter() - t0):.1f}",
            )
            if state.global_iter % tc.checkpoint_every == 0 and state.iter_in_epoch < len(batches):
                save_last()

        # end of epoch: evaluate the EMA weights, log, keep the best, maybe stop
        eval_model = ema.module if ema is not None else model
        metrics = run_evaluation(eval_model, val, gt_val, cfg, d, progress)
        row = {"epoch": epoch, "iterations": state.global_iter, "lr": scheduler.get_last_lr()[0]}
        row.update(_mean_losses(state, d))
        row.update({f"{sec}.{k}": v for sec, stats in metrics.items() for k, v in stats.items()})
        state.history.append(row)
        state.epoch, state.iter_in_epoch, state.loss_sums, state.loss_count = epoch + 1, 0, {}, 0
        value = row.get(tc.early_stop_metric)
        if value is None:
            raise ConfigError(
                f"config: train.early_stop_metric: {tc.early_stop_metric!r} is not one of "
                f"{sorted(k for k in row if '.' in k)}"
            )
        improved = value > state.best_value
        if improved:
            state.best_value, state.best_epoch = value, epoch
        if tc.patience is not None and epoch - state.best_epoch >= tc.patience:
            stop = True
        if d.is_main:
            if improved or tc.select == "last":  # best.pt: the epoch the run selects
                checkpoint.save(
                    run_dir / "best.pt",
                    {
                        "model": eval_model.state_dict(),
                        "epoch": epoch,
                        "metrics": row,
                        "config": to_dict(cfg),
                        "categories": checkpoint.category_entries(base.ann.categories),
                    },
                )
            save_last()
            _write_history(run_dir, state.history, cfg)
            scalars.epoch(row)
            log.info(
                "epoch %d: %s = %.4f (best %.4f at epoch %d)%s",
                epoch,
                tc.early_stop_metric,
                value,
                state.best_value,
                state.best_epoch,
                "; early stop" if stop else "",
            )

    if scalars is not None:
        scalars.close()
    final = _final_metrics(run_dir, state, cfg) if d.is_main else {}
    dist.barrier(d)
    dist.shutdown(d)
    return final


RESUME_FIXED = ("model", "data")  # sections a resumed run must not change


def _check_resumable(path: Path, ck: dict[str, Any], cfg: Config) -> None:
    """A run resumes with the model and data it started with; other settings (epochs,
    patience, ...) may change, and the changes are logged."""
    before = ck.get("config")
    if not isinstance(before, dict):
        raise checkpoint.CheckpointError(f"{path}: config: missing; cannot check the resume")
    now, defaults = to_dict(cfg), to_dict(Config())
    changed = [  # a field added since the run started, at its default value, changes nothing
        k
        for k in _flat_diff(before, now)
        if not (_absent(before, k) and _flat(now, k) == _flat(defaults, k))
    ]
    fixed = [k for k in changed if k.split(".", 1)[0] in RESUME_FIXED]
    if fixed:
        shown = "; ".join(
            f"{k}: {_flat(before, k)!r} in the checkpoint, {_flat(now, k)!r} now" for k in fixed[:4]
        )
        raise checkpoint.CheckpointError(
            f"{path}: cannot resume with another model or data ({shown}); resume with the "
            f"run's own config ({path.parent / 'config.yaml'}) or start a new run"
        )
    if changed:
        log.warning("resuming with changed settings: %s", ", ".join(changed))


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _absent(d: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return True
        d = d[part]
    return False


def _flat(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _batches(
    data: AugmentedDataset, batches: list[list[int]], workers: int, pin: bool = False
) -> Iterator:
    """The samples of each batch, loaded here or by `workers` processes (same samples either
    way: a sample is a function of seed, epoch and index), pinned for a GPU if `pin`."""
    if workers == 0:
        return ([data[i] for i in b] for b in batches)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=batches, num_workers=workers, collate_fn=_as_list, pin_memory=pin
    )
    # The workers fork now. Objects frozen before it stay out of their garbage collections,
    # which would otherwise write into every object they visit (the validation annotations,
    # the model's modules) and copy its page into each worker.
    gc.collect()
    gc.freeze()
    try:
        return iter(loader)
    finally:
        gc.unfreeze()  # here, frozen objects would never be collected


def _as_list(samples: list) -> list:
    return samples


def _mean_losses(state: RunState, d: dist.Dist) -> dict[str, float]:
    """Per-epoch mean of each loss, averaged over ranks (each rank saw its share of the batch)."""
    keys = sorted(state.loss_sums)
    sums = torch.tensor([state.loss_sums[k] for k in keys], dtype=torch.float64)
    if d.enabled:
        torch.distributed.all_reduce(sums)
        sums /= d.world_size
    return {k: float(v) / max(state.loss_count, 1) for k, v in zip(keys, sums, strict=True)}


def run_evaluation(
    model: nn.Module,
    val: InstanceDataset,
    gt: AnnotationFile,
    cfg: Config,
    d: dist.Dist,
    progress: bool,
) -> dict[str, dict[str, float]]:
    """Each rank predicts its shard of the val split; the main rank gathers the predictions,
    evaluates them alone (one copy of the detections in memory, no duplicated work) and sends
    the metrics to every rank, which all need them for early stopping."""
    preds = predict_split(model, val, cfg.infer, d, cfg.eval.max_images, progress)
    metrics = None
    if d.is_main:
        metrics = evaluate_predictions(gt, preds, cfg, {p["image_id"] for p in preds})
    return dist.broadcast_object(d, metrics)


def _write_history(run_dir: Path, history: list[dict[str, Any]], cfg: Config) -> None:
    text = "".join(json.dumps(r) + "\n" for r in history)
    atomic_write_text(run_dir / "metrics.jsonl", text)
    title = f"{cfg.model.backbone.kind} HTC · {cfg.model.roi.cls_loss} · EMA {cfg.train.ema}"
    plot_curves(history, run_dir / "curves.png", title)


def _final_metrics(run_dir: Path, state: RunState, cfg: Config) -> dict[str, Any]:
    """metrics.json: the selected epoch's evaluation (`train.select`: the best or the last), by
    section (segm, challenge2021, ...)."""
    if not state.history:
        return {}
    if cfg.train.select == "last":
        chosen = state.history[-1]
    else:
        chosen = state.history[max(state.best_epoch, 0) - state.history[0]["epoch"]]
    sections: dict[str, dict[str, float]] = {}
    for k, v in chosen.items():
        if "." in k:
            sec, key = k.split(".", 1)
            sections.setdefault(sec, {})[key] = v
    out = {
        "best_epoch": state.best_epoch,
        "selected_epoch": chosen["epoch"],
        "early_stop_metric": cfg.train.early_stop_metric,
        "epochs_run": len(state.history),
        **sections,
    }
    atomic_write_json(run_dir / "metrics.json", out, indent=1)
    return out
