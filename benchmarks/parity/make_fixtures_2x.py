"""CBNetV2's own outputs (its mmdetection 2.14 fork) for a small random-weight CB-Swin HTC: the
`cbswin_htc` fixture of tests/test_parity.py.

    bash benchmarks/parity/build_mmcv1.sh       # once: mmcv-full 1.7.2 in .venv-mmcv1
    git clone https://github.com/VDIGPKU/CBNetV2 /path/CBNetV2   # commit 7ff88b70 was used
    benchmarks/parity/.venv-mmcv1/bin/python benchmarks/parity/make_fixtures_2x.py /path/CBNetV2

CBNetV2's repository is its own copy of mmdetection 2.14 (it asks for mmcv ≤ 1.4.0; 1.7.2 is
the oldest mmcv-full whose ops build against torch 2.14, and the version check is bypassed).
Its HTC configs all add HTC's semantic head, which tailseg does not have; the model here is its
base `htc_without_semantic_swin_fpn.py` with its `CBSwinTransformer` and `CBFPN`, shrunk as in
make_fixtures.py, weights from the same recipe, run in float64 on the same photos. 2.x returns
detections grouped by class (each group by score), stored that way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import (  # noqa: E402
    grouped_by_class,
    network_input,
    nms_in_float64,
    record,
    shrink,
)

SWIN = dict(embed_dim=24, depths=[1, 1, 2, 1], num_heads=[1, 2, 3, 6], window_size=7)
NAME = "cbswin_htc"
TAILSEG = [
    "model.backbone.kind=swin", "model.backbone.composite=true", "model.backbone.embed_dim=24",
    "model.backbone.depths=[1,1,2,1]", "model.backbone.num_heads=[1,2,3,6]",
    "model.backbone.window_size=7",
]  # fmt: skip


def build(repo: Path):
    import mmcv

    mmcv.__version__ = "1.4.0"  # CBNetV2's mmdet asks for mmcv <= 1.4.0
    sys.path.insert(0, str(repo))
    from mmdet.models import build_detector

    cfg = mmcv.Config.fromfile(str(repo / "configs/_base_/models/htc_without_semantic_swin_fpn.py"))
    cfg.model.backbone = dict(
        type="CBSwinTransformer", **SWIN, mlp_ratio=4.0, qkv_bias=True, ape=False,
        drop_path_rate=0.0, patch_norm=True, out_indices=(0, 1, 2, 3), use_checkpoint=False,
    )  # fmt: skip
    cfg.model.neck.type = "CBFPN"
    cfg.model.neck.in_channels = [24, 48, 96, 192]
    cfg.model.pretrained = None
    shrink(cfg)
    cfg.model.test_cfg.rcnn.score_thr = 0.001
    cfg.model.test_cfg.rcnn.max_per_img = 100
    model = build_detector(cfg.model)
    return model.eval().double(), cfg


@torch.no_grad()
def run(model, image: torch.Tensor) -> dict:
    from mmdet.core import bbox2roi

    x, h, w, ph, pw = network_input(image)
    meta = [dict(img_shape=(h, w, 3), ori_shape=(h, w, 3), pad_shape=(ph, pw, 3),
                 scale_factor=np.ones(4, dtype=np.float32), flip=False, flip_direction=None,
                 batch_input_shape=(ph, pw))]  # fmt: skip
    feats = model.extract_feat(x)
    (proposals,) = model.rpn_head.simple_test_rpn(feats, meta)  # (N, 5): boxes, score
    head = model.roi_head
    rois = bbox2roi([proposals[:, :4]])
    stages = []
    for i in range(head.num_stages):
        out = head._bbox_forward(i, feats, rois)
        deltas = out["bbox_pred"]
        boxes = head.bbox_head[i].bbox_coder.decode(rois[:, 1:], deltas, max_shape=(h, w))
        stages.append({"logits": out["cls_score"], "deltas": deltas, "boxes": boxes})
        rois = torch.cat([rois[:, :1], boxes], dim=1)
    ((per_class_boxes, per_class_masks),) = head.simple_test(
        feats, [proposals], meta, rescale=False
    )
    return {
        "proposals": proposals[:, :4],
        "proposal_scores": proposals[:, 4],
        "stages": stages,
        **grouped_by_class(per_class_boxes, per_class_masks),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cbnetv2", type=Path, help="a checkout of VDIGPKU/CBNetV2")
    ap.add_argument("--out", type=Path, default=HERE.parents[1] / "tests" / "data" / "parity")
    args = ap.parse_args()
    model, cfg = build(args.cbnetv2)
    nms_in_float64()  # the same patches work on mmcv-full 1.x and mmdetection 2.x
    import mmcv

    fields = {
        "versions": f"CBNetV2 (mmdet 2.14 fork), mmcv-full {mmcv.__version__}, torch "
        f"{torch.__version__}",
        "config": "CBNetV2 configs/_base_/models/htc_without_semantic_swin_fpn.py + CBSwin, CBFPN",
        "mmdet_version": "2.14.0",
        "grouped_by_class": True,
        "tailseg_overrides": TAILSEG,
        "test_cfg": {k: dict(cfg.model.test_cfg[k]) for k in ("rpn", "rcnn")},
    }
    for o in record(model, NAME, run, fields, args.out):
        print(f"{NAME}: {len(o['proposals'])} proposals, {len(o['boxes'])} detections")


if __name__ == "__main__":
    main()
