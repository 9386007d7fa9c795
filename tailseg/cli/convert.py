"""`tailseg convert mmdet CHECKPOINT --config CONFIG --out model.pt [--categories JSON] [k=v ...]`:
bring weights trained with mmdetection (3.x; CBNetV2's and RefineMask's 2.x checkpoints) along."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailseg.errors import CheckpointError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="import another toolkit's weights (mmdetection) as a tailseg checkpoint",
        description="Every source key is mapped to a tailseg tensor or dropped with a reason; a "
        "key that fits nowhere, or a tailseg tensor left without weights, is an error naming it. "
        "The output loads in `tailseg predict` and `tailseg eval` like a trained run's best.pt.",
    )
    p.add_argument("toolkit", choices=["mmdet"], help="where the checkpoint comes from")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--config", required=True, help="the tailseg config of the same model")
    p.add_argument("--out", required=True, type=Path, help="the tailseg checkpoint to write")
    p.add_argument(
        "--categories",
        type=Path,
        help="annotation json whose categories the model's labels are (ascending id order)",
    )
    p.add_argument(
        "--lossy",
        action="store_true",
        help="import what tailseg's model has (e.g. CBNetV2's backbone without HTC's semantic "
        "head) to fine-tune from; dropped parts and initialised tensors are listed",
    )
    p.add_argument("overrides", nargs="*", help="dotted config overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailseg.cli.common import resolve_config
    from tailseg.convert.checkpoint import config_path, convert_checkpoint

    try:
        report = convert_checkpoint(
            args.checkpoint,
            resolve_config(args.config),
            args.out,
            args.overrides,
            args.categories,
            lossy=args.lossy,
        )
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    cfg = config_path(args.out)
    print(f"wrote {args.out} and its config {cfg}: tailseg predict {cfg} --checkpoint {args.out}")
    return 0
