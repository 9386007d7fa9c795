"""`tailseg eval`: COCO / LVIS / AP‡ metrics of a results json against an annotation json."""

from __future__ import annotations

import argparse
import sys
import time

from tailseg.utils.files import atomic_write_json


def _cap(text: str) -> int | None:
    if text.lower() in ("none", "null", "-1"):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("a cap is a positive integer or 'none'")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a results json (COCO, LVIS or AP‡)")
    p.add_argument("--gt", required=True, help="ground-truth LVIS/COCO json (.json or .json.gz)")
    p.add_argument("--results", required=True, help="results json: a list of detections")
    p.add_argument("--protocol", choices=["coco", "lvis", "challenge2021"], default="lvis")
    p.add_argument(
        "--iou-type",
        choices=["segm", "bbox", "boundary"],
        help="default: boundary for challenge2021, segm otherwise",
    )
    p.add_argument(
        "--max-dets-per-image",
        type=_cap,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="per-image cap (lvis: 300 by default; coco: the last maxDets, 100)",
    )
    p.add_argument(
        "--max-dets-per-class",
        type=_cap,
        default=argparse.SUPPRESS,
        metavar="K|none",
        help="per-class cap over the whole file (challenge2021: 10000 by default)",
    )
    p.add_argument("--dilation", type=float, default=0.02, help="boundary width / diagonal")
    p.add_argument("--out", help="write metrics.json here")
    p.add_argument("--plots", help="write PNG plots into this folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tailseg.data import AnnotationFile
    from tailseg.evaluation import evaluate, load_results, make_protocol
    from tailseg.evaluation.report import format_result

    kwargs = {
        k: getattr(args, k)
        for k in ("max_dets_per_image", "max_dets_per_class")
        if hasattr(args, k)
    }
    try:
        protocol = make_protocol(args.protocol, args.iou_type, dilation=args.dilation, **kwargs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    gt = AnnotationFile.load(args.gt, keep_degenerate=True)
    dets = load_results(
        args.results,
        gt,
        need_masks=protocol.iou_type != "bbox",
        box_scores=protocol.iou_type == "bbox",
    )
    result = evaluate(gt, dets, protocol, progress=True)
    print(format_result(result))
    print(f"time {time.perf_counter() - start:.1f} s")
    if args.out:
        atomic_write_json(args.out, result.to_json(), indent=1)
        print(f"metrics: {args.out}")
    if args.plots:
        from tailseg.viz.eval_plots import write_eval_plots

        for path in write_eval_plots(result, args.plots):
            print(f"plot: {path}")
    return 0
