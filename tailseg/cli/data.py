"""`tailseg data synth|stats`: make the synthetic benchmark, describe any annotation file."""

from __future__ import annotations

import argparse
from pathlib import Path

from tailseg.cli.preview import add_preview_parser
from tailseg.config import SynthConfig
from tailseg.utils.files import atomic_write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: synthetic benchmark, statistics")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    d = SynthConfig()
    s = dsub.add_parser("synth", help="write the synthetic long-tailed LVIS-format benchmark")
    s.add_argument("--out", required=True, help="output folder (train.json, val.json, images/)")
    s.add_argument("--num-classes", type=int, default=d.num_classes)
    s.add_argument("--train-images", type=int, default=d.train_images)
    s.add_argument("--val-images", type=int, default=d.val_images)
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--min-side", type=int, default=d.min_side, help="smallest image short side")
    s.add_argument("--max-side", type=int, default=d.max_side, help="largest image short side")
    s.add_argument("--max-objects", type=int, default=d.max_objects, help="objects per image")
    s.set_defaults(func=run_synth)

    t = dsub.add_parser("stats", help="per-frequency class/image/instance counts of a json")
    t.add_argument("file", help="LVIS or COCO instances json (.json or .json.gz)")
    t.add_argument("--plot", help="write the long-tail picture to this PNG")
    t.add_argument("--json", dest="json_out", help="write the statistics to this json")
    t.add_argument(
        "--rfs-threshold",
        type=float,
        help="add repeat-factor sampling figures for this threshold t (LVIS: 0.001)",
    )
    t.set_defaults(func=run_stats)

    add_preview_parser(dsub)


def run_synth(args: argparse.Namespace) -> int:
    from tailseg.config import from_dict
    from tailseg.data import AnnotationFile
    from tailseg.data.stats import dataset_stats, format_stats
    from tailseg.data.synth import generate

    cfg = from_dict(
        SynthConfig,
        {
            "num_classes": args.num_classes,
            "train_images": args.train_images,
            "val_images": args.val_images,
            "seed": args.seed,
            "min_side": args.min_side,
            "max_side": args.max_side,
            "max_objects": args.max_objects,
        },
        source="command line",
    )
    out = generate(args.out, cfg)
    for path in (out.train_json, out.val_json):
        print(format_stats(dataset_stats(AnnotationFile.load(path))))
    print(f"train: {out.train_json}\nval:   {out.val_json}\nimages: {out.image_root}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from tailseg.data import AnnotationFile
    from tailseg.data.sampling import repeat_factors, rfs_summary
    from tailseg.data.stats import dataset_stats, format_stats
    from tailseg.viz.longtail import plot_long_tail

    ann = AnnotationFile.load(args.file)
    stats = dataset_stats(ann)
    print(format_stats(stats))
    if args.rfs_threshold is not None:
        rfs = rfs_summary(repeat_factors(ann, args.rfs_threshold), args.rfs_threshold)
        stats.update(rfs)
        print(
            f"  repeat factor sampling (t = {args.rfs_threshold:g}): "
            f"{rfs['rfs_images_repeated']} images repeated, mean r {rfs['rfs_mean_factor']:.2f},"
            f" max r {rfs['rfs_max_factor']:.2f}, epoch {rfs['rfs_epoch_length']:.0f} images"
            f" (stochastic) or {rfs['rfs_epoch_length_ceil']:.0f} (ceil), of {stats['images']}"
        )
    if args.plot:
        print(f"long-tail picture: {plot_long_tail(stats, args.plot)}")
    if args.json_out:
        atomic_write_json(args.json_out, stats, indent=1)
        print(f"statistics: {Path(args.json_out)}")
    return 0
