"""`tailseg demo`: the main job on the embedded default (the synthetic benchmark).

Today it generates the benchmark of `configs/tiny.yaml` and describes it (statistics and the
long-tail picture). Training, evaluation and prediction join it as they land.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tailseg.cli.common import load_run_config
from tailseg.config import dump
from tailseg.data import AnnotationFile
from tailseg.data.stats import dataset_stats, format_stats
from tailseg.data.synth import generate
from tailseg.utils.files import atomic_write_json, atomic_write_text
from tailseg.viz.longtail import plot_long_tail


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job end to end on the synthetic benchmark")
    p.add_argument("config", nargs="?", default="tiny", help="config (default: tiny)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.synth.seed=1")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_run_config(args.config, args.overrides)
    if cfg.data.synth is None:
        raise SystemExit("error: the demo needs data.synth in its config")
    out = Path(args.out)
    atomic_write_text(out / "config.yaml", dump(cfg))
    data = generate(out / "data", cfg.data.synth)
    outputs = {"config": out / "config.yaml"}
    for split, path in (("train", data.train_json), ("val", data.val_json)):
        stats = dataset_stats(AnnotationFile.load(path))
        print(format_stats(stats))
        outputs[f"{split} stats"] = out / f"{split}_stats.json"
        atomic_write_json(outputs[f"{split} stats"], stats, indent=1)
        outputs[f"{split} long tail"] = plot_long_tail(stats, out / f"{split}_long_tail.png")
    outputs["train json"], outputs["val json"] = data.train_json, data.val_json
    print("\nwritten:")
    for name, path in outputs.items():
        print(f"  {name:<16}{path}")
    return 0
