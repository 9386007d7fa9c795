"""`tailseg ablate TABLE --out DIR [--scale tiny|small|full] [--seeds N] [--rows ...]`.

Trains every row of a report table (or a user's table file) over N seeds, each run in its own
process and folder, and writes DIR/TABLE.{md,json,png} after every finished run: each row's
mean ± sd, its difference to the previous row, the report's number and whether the direction
agrees. Interrupted? Run the same command again: finished runs are reused, the rest resumed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="a report table (or your own) as configs, over seeds")
    p.add_argument("table", help="table1..table5, figure1, or a table file (YAML)")
    p.add_argument("overrides", nargs="*", help="dotted overrides for every row, e.g. data paths")
    p.add_argument("--out", required=True, help="study folder (runs under DIR/<row>/seed<k>/)")
    p.add_argument("--scale", default="tiny", help="tiny (default), small, full or a scale file")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per row (default 3)")
    p.add_argument("--rows", nargs="+", default=(), help="only these rows (by name)")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) per training run")
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="runs side by side, each on its own GPU(s) (GPU only; CPU runs one at a time)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailseg.config.scales import load_scale
    from tailseg.errors import ConfigError
    from tailseg.study import report
    from tailseg.study.runner import claim_study, execute, plan
    from tailseg.study.table import load_table

    if args.seeds < 1:
        raise ConfigError(f"command line: --seeds: must be >= 1, got {args.seeds}")
    if args.nproc < 1 or args.parallel < 1:
        raise ConfigError("command line: --nproc and --parallel must be >= 1")
    if args.parallel > 1 or args.nproc > 1:
        import torch

        need = args.parallel * args.nproc
        have = torch.cuda.device_count()
        if args.parallel > 1 and have < need:
            raise ConfigError(
                f"command line: --parallel {args.parallel} × --nproc {args.nproc} needs {need} "
                f"GPUs, {have} found (on CPU, runs go one at a time)"
            )
    table = load_table(args.table)
    scale = load_scale(args.scale)
    out = Path(args.out)
    runs = plan(table, out, scale, args.seeds, args.rows, args.overrides)
    if args.dry_run:
        for r in runs:
            print(f"{r.kind:8s}{r.row:24s}seed {r.seed}  {r.run_dir}")
        return 0
    claim_study(out, scale)

    def rewrite() -> None:
        report.write(out, table, runs, scale.name)

    print(f"{table.title} · scale {scale.name} · {args.seeds} seeds · {out}", flush=True)
    execute(
        runs,
        nproc=args.nproc,
        parallel=args.parallel,
        on_change=rewrite,
        say=lambda text: print(text, flush=True),
    )
    summary = report.write(out, table, runs, scale.name)
    print(report.markdown(summary))
    failed = [r for r in runs if r.status == "failed"]
    print(f"written: {out / (table.name + '.md')}, .json, .png")
    return 3 if failed else 0
