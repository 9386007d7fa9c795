"""Human-readable summary of an `EvalResult`."""

from __future__ import annotations

from tailseg.evaluation.evaluator import EvalResult


def _cap(v: int | None) -> str:
    return "none" if v is None else f"{v:,}"


def format_result(result: EvalResult) -> str:
    p = result.protocol
    head = f"protocol {p.name} · IoU {p.iou_type}"
    if p.iou_type == "boundary":
        head += f" (dilation {p.dilation:g})"
    if p.name == "coco":
        head += f" · maxDets {'/'.join(str(m) for m in p.coco_max_dets)} per image and class"
    else:
        head += f" · per-image cap {_cap(p.max_dets_per_image)}"
        head += f" · per-class cap {_cap(p.max_dets_per_class)}"
    lines = [
        head,
        f"detections: {result.num_detections:,} in results, {result.num_after_caps:,} after caps,"
        f" {result.num_evaluated:,} evaluated",
    ]
    if result.classes_at_cap:
        lines.append(f"classes at the per-class cap: {len(result.classes_at_cap)}")
    keys = p.stat_keys
    lines.append("  ".join(f"{k:>6}" for k in keys))
    lines.append(
        "  ".join(
            f"{100 * result.stats[k]:6.2f}" if result.stats[k] >= 0 else f"{'n/a':>6}" for k in keys
        )
    )
    return "\n".join(lines)
