"""`tailseg ablate`'s engine: plan a table's runs, run each in its own process, keep the table.

Runs live under `DIR/<row>/seed<k>/` (a prediction row's model under `DIR/<model>/seed<k>/`);
rows of several tables with one name share their runs, so `table1` then `table3` in one DIR
trains the Strong Baseline once. A finished run (its `metrics.json`) is reused, an interrupted one
resumed from its last checkpoint, a failed one reported in the table with its log and retried
next time. A run folder made with another config (another table's row of the same name, another
scale) is an error naming the file and the first differing key; `DIR/study.json` records the
scale a folder was made at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailseg.config import Config, dump, load, to_dict
from tailseg.config.scales import Scale, leaves, load_scaled
from tailseg.errors import ConfigError, RunDirError
from tailseg.study.table import Row, Table
from tailseg.utils.files import atomic_write_json, atomic_write_text


@dataclass
class Run:
    """One row × seed: a training run, or a prediction with a trained model (`model`)."""

    row: str
    seed: int
    cfg: Config
    run_dir: Path
    model: Run | None = None
    status: str = "pending"  # pending, done, failed
    seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "train" if self.model is None else "predict"

    @property
    def log(self) -> Path:
        return self.run_dir / "log.txt"

    @property
    def config_file(self) -> Path:
        return self.run_dir.parent / f"seed{self.seed}.yaml"


def row_config(row: Row, scale: Scale, seed: int, overrides: Sequence[str]) -> Config:
    """The row's config at the scale, for one seed: factors, the scale's overrides, the study's
    command-line overrides (every row's), the row's own overrides, then `train.seed`."""
    return load_scaled(row.config, scale, [*overrides, *row.overrides, f"train.seed={seed}"])


def check_scale_masks_nothing(table: Table, scale: Scale) -> None:
    """ConfigError if a row's config changes (against the table's first row) a key the scale
    sets outright: that change would silently vanish at this scale."""
    rows = [table.model] if table.model else list(table.rows)
    if len(rows) < 2 or not scale.overrides:
        return
    flat = [dict(leaves(to_dict(load(Config, r.config)))) for r in rows]
    fixed = scale.flat_overrides()
    for row, values in zip(rows[1:], flat[1:], strict=True):
        for key, value in values.items():
            if value != flat[0].get(key) and any(
                key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in fixed
            ):
                raise ConfigError(
                    f"{row.config}: {key}: row {row.name!r} changes it, but scale {scale.name} "
                    f"({scale.path}) sets it outright, so the change would be lost"
                )


def plan(
    table: Table,
    out: Path,
    scale: Scale,
    seeds: int,
    rows: Sequence[str] = (),
    overrides: Sequence[str] = (),
) -> list[Run]:
    """Every run the table needs, seed by seed (seed 0 of every row first, so that a partial
    study has a whole table early); a prediction table's model runs before its rows."""
    check_scale_masks_nothing(table, scale)
    chosen = [table.row(name) for name in rows] if rows else list(table.rows)
    runs: list[Run] = []
    for seed in range(seeds):
        model = None
        if table.model is not None:
            cfg = row_config(table.model, scale, seed, overrides)
            model = Run(table.model.name, seed, cfg, out / table.model.name / f"seed{seed}")
            runs.append(model)
        for row in chosen:
            if model is not None:  # the model's config with the row's test-time settings
                cfg = load_scaled(
                    table.model.config,
                    scale,
                    [*overrides, *row.overrides, f"train.seed={seed}"],
                )
                _check_test_only(row, model.cfg, cfg, table.path)
            else:
                cfg = row_config(row, scale, seed, overrides)
            runs.append(Run(row.name, seed, cfg, out / row.name / f"seed{seed}", model))
    return runs


def _check_test_only(row: Row, trained: Config, cfg: Config, table: Path) -> None:
    trained_flat = dict(leaves(to_dict(trained)))
    for key, value in leaves(to_dict(cfg)):
        if key.split(".")[0] in ("model", "data", "train") and value != trained_flat.get(key):
            raise ConfigError(
                f"{table}: {row.name}: overrides: {key}: a prediction row changes only "
                "test-time settings (infer.*, eval.*)"
            )


def claim_study(out: Path, scale: Scale) -> None:
    """Record the scale in DIR/study.json; RunDirError if DIR holds a study at another scale."""
    stamp = out / "study.json"
    if stamp.exists():
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError) as e:
            raise RunDirError(
                f"{stamp}: unreadable ({e}); remove it or choose another --out"
            ) from None
        if have.get("scale") != scale.name:
            raise RunDirError(
                f"{stamp}: scale: this folder holds a study at scale {have.get('scale')!r}, not "
                f"{scale.name!r}; choose another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stamp, {"scale": scale.name, "scale_file": str(scale.path)}, indent=1)


def check_existing(run: Run) -> None:
    """ConfigError if the run folder holds a run of another config (the file, the first key)."""
    written = run.run_dir / "config.yaml"
    if not written.exists():
        return
    try:
        have = dict(leaves(to_dict(load(Config, written))))
    except ConfigError as e:
        raise ConfigError(
            f"{written}: not a config of this tailseg ({e}); remove the run"
        ) from None
    want = dict(leaves(to_dict(run.cfg)))
    for key in sorted(set(have) | set(want)):
        if have.get(key) != want.get(key):
            raise ConfigError(
                f"{written}: {key}: the run there was made with {have.get(key)!r}, this row "
                f"wants {want.get(key)!r} (another table's row of the same name?); choose "
                "another --out or remove that run"
            )


def finished(run: Run) -> dict[str, Any] | None:
    path = run.run_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def command(run: Run, nproc: int) -> list[str]:
    if run.model is not None:
        job = ["predict", str(run.config_file), str(run.model.run_dir), str(run.run_dir)]
        return [sys.executable, "-m", "tailseg.study.worker", *job]
    job = ["train", str(run.config_file), str(run.run_dir)]
    if nproc > 1:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        return [sys.executable, *launch, "-m", "tailseg.study.worker", *job]
    return [sys.executable, "-m", "tailseg.study.worker", *job]


def _start(run: Run, nproc: int, devices: list[int] | None) -> subprocess.Popen:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.config_file, dump(run.cfg))
    if run.model is not None:
        atomic_write_text(run.run_dir / "config.yaml", dump(run.cfg))
    env = dict(os.environ)
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
    log = open(run.log, "a", encoding="utf-8")  # noqa: SIM115 (closed when the run ends)
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command(run, nproc))}\n")
    log.flush()
    proc = subprocess.Popen(
        command(run, nproc if run.model is None else 1),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    proc.log_file = log  # type: ignore[attr-defined]
    return proc


def execute(
    runs: list[Run],
    *,
    nproc: int = 1,
    parallel: int = 1,
    on_change: Callable[[], None] = lambda: None,
    say: Callable[[str], None] = print,
) -> None:
    """Run what is not finished: one at a time, or `parallel` at once on separate GPUs (slot i
    gets GPUs i·nproc ... i·nproc + nproc - 1). `on_change` is called after every run ends."""
    for run in runs:
        check_existing(run)
    todo = []
    for run in runs:
        found = finished(run)
        if found is not None:
            run.status, run.metrics = "done", found
        else:
            todo.append(run)
    total, done_now, durations = len(todo), 0, []
    say(f"{len(runs) - total} of {len(runs)} runs already finished; {total} to run")
    running: dict[int, tuple[Run, subprocess.Popen, float]] = {}
    free = list(range(parallel))
    while todo or running:
        for run in list(todo):
            if not free:
                break
            if run.model is not None and run.model.status != "done":
                if run.model.status == "failed":
                    todo.remove(run)
                    run.status = "failed"
                    run.metrics = {"error": f"its model run failed (see {run.model.log})"}
                    done_now += 1
                    say(f"[{done_now}/{total}] skipped {run.row} seed {run.seed}: model failed")
                    on_change()
                continue  # waits for its model
            todo.remove(run)
            slot = free.pop(0)
            devices = list(range(slot * nproc, slot * nproc + nproc)) if parallel > 1 else None
            eta = _eta(durations, total - done_now, parallel)
            say(f"[{done_now + 1}/{total}] started {run.kind} {run.row} seed {run.seed}{eta}")
            running[slot] = (run, _start(run, nproc, devices), time.perf_counter())
        if not running:  # nothing could start: only runs waiting on a model that never ran
            for run in todo:
                run.status, run.metrics = "failed", {"error": "its model run did not run"}
            break
        time.sleep(0.2)
        for slot, (run, proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            proc.log_file.close()  # type: ignore[attr-defined]
            del running[slot]
            free.append(slot)
            run.seconds = time.perf_counter() - t0
            durations.append(run.seconds)
            done_now += 1
            found = finished(run) if proc.returncode == 0 else None
            if found is not None:
                run.status, run.metrics = "done", found
                eta = _eta(durations, total - done_now, parallel) if done_now < total else ""
                say(
                    f"[{done_now}/{total}] finished {run.row} seed {run.seed} in "
                    f"{_hms(run.seconds)}{eta}"
                )
            else:
                run.status = "failed"
                run.metrics = {"error": f"exit status {proc.returncode}", "log": str(run.log)}
                say(
                    f"[{done_now}/{total}] FAILED {run.row} seed {run.seed} (exit "
                    f"{proc.returncode}): see {run.log}"
                )
            on_change()


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _eta(durations: list[float], left: int, parallel: int) -> str:
    if not durations:
        return ""
    return f" (eta {_hms(sum(durations) / len(durations) * left / parallel)})"
