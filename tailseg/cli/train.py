"""`tailseg train CONFIG --out RUN_DIR [key=value ...] [--resume]` (also under torchrun)."""

from __future__ import annotations

import argparse
import json
import sys

from tailseg.cli.common import load_run_config
from tailseg.errors import CheckpointError, TrainingError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model; evaluates every epoch, keeps the best")
    p.add_argument("config", help="config path or name under tailseg/configs/")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=3")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --out (else refused)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--scale", help="run a report config at a study scale: tiny, small, full or a scale file"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailseg.engine.trainer import train

    cfg = load_run_config(args.config, args.overrides, args.scale)
    try:
        final = train(
            cfg,
            args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (TrainingError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if final:
        print(json.dumps({k: v for k, v in final.items() if not isinstance(v, dict)}))
        for sec in ("segm", "challenge2021"):
            if sec in final:
                stats = final[sec]
                print(
                    f"{sec}: " + "  ".join(f"{k} {100 * v:.2f}" for k, v in stats.items() if v >= 0)
                )
    return 0
