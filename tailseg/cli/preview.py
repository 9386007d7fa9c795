"""`tailseg data preview CONFIG --out grid.png`: what the training pipeline feeds the model."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tailseg.cli.common import load_run_config


def add_preview_parser(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser("preview", help="a grid of augmented training samples (PNG)")
    p.add_argument("config", help="config path or name under tailseg/configs/")
    p.add_argument("overrides", nargs="*", help="dotted overrides")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument(
        "--data-dir", help="where a synthetic benchmark is generated (default: beside --out)"
    )
    p.set_defaults(func=run_preview)


def run_preview(args: argparse.Namespace) -> int:
    from tailseg.data import InstanceDataset
    from tailseg.data.sampling import RepeatFactorSampler, repeat_factors
    from tailseg.data.splits import split_files
    from tailseg.data.transforms.pipeline import AugmentedDataset
    from tailseg.viz.figures import plt, save_png
    from tailseg.viz.overlay import draw_instances

    cfg = load_run_config(args.config, args.overrides)
    out = Path(args.out)
    data_dir = Path(args.data_dir) if args.data_dir else out.parent / "preview_data"
    base = InstanceDataset(
        *split_files(cfg, "train", data_dir),
        only_annotated=True,
        allow_outside_root=cfg.data.allow_outside_root,
    )
    a = cfg.data.augment
    factors = repeat_factors(base.ann, a.rfs_threshold)
    sampler = RepeatFactorSampler(factors, seed=cfg.train.seed, mode=a.rfs_mode)
    sampler.set_epoch(args.epoch)
    data = AugmentedDataset(base, factors, a, seed=cfg.train.seed)
    data.set_epoch(args.epoch)
    indices = list(sampler)[: args.n]
    names = [c.name for c in base.ann.categories]
    cols = math.ceil(math.sqrt(len(indices)))
    rows = math.ceil(len(indices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices, strict=False):
        image, t = data[i]
        draw_instances(ax, image, t.boxes, t.masks, t.labels, names, fontsize=5)
        ax.set_title(
            f"image {base.image_ids[i]} · {len(t)} instances · {image.shape[-1]}×{image.shape[-2]}",
            fontsize=7,
        )
    fig.suptitle(
        f"training samples (epoch {args.epoch}): RFS t={a.rfs_threshold:g}, mosaic "
        f"{a.mosaic_prob:g}, copy-paste {a.copy_paste_prob:g}",
        fontsize=9,
    )
    print(f"preview: {save_png(fig, out, dpi=110)}")
    return 0
