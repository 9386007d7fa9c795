"""`tailseg COMMAND ...`: one entry point for every job.

Bad input (config, json, images) ends with one line `error: <file>: <field>: <problem>` and
exit status 2, never a traceback; a run that cannot go on (non-finite loss, an unusable
checkpoint, a full disk or read-only output folder) ends with one line and status 3.
`TAILSEG_DEBUG=1` shows the traceback.

Start-up is instant: the command modules import torch, NumPy, numba and matplotlib inside the
command that needs them, so `tailseg --help` loads none of them and `tailseg eval` never loads
torch (tests/test_cli_imports.py checks both).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tailseg import __version__
from tailseg.cli import ablate as ablate_cmd
from tailseg.cli import convert as convert_cmd
from tailseg.cli import data as data_cmd
from tailseg.cli import demo as demo_cmd
from tailseg.cli import eval as eval_cmd
from tailseg.cli import model as model_cmd
from tailseg.cli import predict as predict_cmd
from tailseg.cli import train as train_cmd
from tailseg.errors import ConfigError, ConversionError, DataError, RunDirError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tailseg",
        description="Large-vocabulary, long-tailed instance segmentation (LVIS Challenge 2021 "
        "recipe). Config-driven commands take CONFIG (a path or a name under tailseg/configs/) and "
        "dotted overrides such as train.epochs=3.",
    )
    parser.add_argument("--version", action="version", version=f"tailseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train_cmd.add_parser(sub)
    data_cmd.add_parser(sub)
    demo_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    predict_cmd.add_parser(sub)
    model_cmd.add_parser(sub)
    ablate_cmd.add_parser(sub)
    convert_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides may also follow the options: `train tiny --out X train.epochs=2`
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, RunDirError, ConversionError) as e:
        if os.environ.get("TAILSEG_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or vanished output folder, ...
        if os.environ.get("TAILSEG_DEBUG"):
            raise
        where = e.filename if e.filename is not None else "output"
        print(f"error: {where}: {e.strerror or e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
