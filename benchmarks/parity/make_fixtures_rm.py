"""RefineMask's own outputs (its mmdetection 2.3 fork) for a small random-weight Mask R-CNN
with RefineMaskHead: the `refinemask_r50` fixture of tests/test_parity.py.

    bash benchmarks/parity/build_mmcv1.sh       # once: mmcv-full 1.7.2 in .venv-mmcv1
    git clone https://github.com/zhanggang001/RefineMask /path/RefineMask
    benchmarks/parity/.venv-mmcv1/bin/python benchmarks/parity/make_fixtures_rm.py /path/RefineMask

The repository asks for mmcv 1.0.5 (its check is bypassed; its code runs on 1.7.2). The model
is its LVIS config `configs/refinemask/lvis/r50-refinemask-1x.py` (class-specific boxes,
class-agnostic 112×112 logits) shrunk as in make_fixtures.py, weights from the same recipe,
float64, the same photos; detections grouped by class, as mmdetection 2.x returns them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import (  # noqa: E402
    NUM_CLASSES,
    grouped_by_class,
    network_input,
    nms_in_float64,
    record,
)

NAME = "refinemask_r50"
TAILSEG = [
    "model.backbone.kind=resnet", "model.backbone.depth=50", "model.backbone.base_width=16",
    "model.roi.stage_ious=[0.5]", "model.roi.stage_weights=[1.0]",
    "model.roi.stage_stds=[[0.1,0.1,0.2,0.2]]", "model.roi.mask_heads=[refinemask]",
]  # fmt: skip


def build(repo: Path):
    import mmcv

    mmcv.__version__ = "1.0.5"  # RefineMask's mmdet asks for exactly mmcv 1.0.5
    sys.path.insert(0, str(repo))
    from mmdet.models import build_detector

    cfg = mmcv.Config.fromfile(str(repo / "configs/refinemask/lvis/r50-refinemask-1x.py"))
    m = cfg.model
    m.pretrained = None
    m.backbone.base_channels = 16
    m.neck.in_channels = [64, 128, 256, 512]
    fpn, fc, dim = 32, 64, 32
    m.neck.out_channels = fpn
    m.rpn_head.in_channels = m.rpn_head.feat_channels = fpn
    m.roi_head.bbox_roi_extractor.out_channels = m.roi_head.mask_roi_extractor.out_channels = fpn
    b = m.roi_head.bbox_head
    b.in_channels, b.fc_out_channels, b.num_classes = fpn, fc, NUM_CLASSES
    h = m.roi_head.mask_head
    h.conv_in_channels_instance = h.conv_in_channels_semantic = fpn
    h.conv_out_channels_instance = h.conv_out_channels_semantic = dim
    h.stage_num_classes = [NUM_CLASSES, NUM_CLASSES, NUM_CLASSES, 1]
    cfg.test_cfg.rcnn.score_thr = 0.001
    cfg.test_cfg.rcnn.max_per_img = 100
    model = build_detector(m, train_cfg=cfg.train_cfg, test_cfg=cfg.test_cfg)
    return model.eval().double(), cfg


@torch.no_grad()
def run(model, image: torch.Tensor) -> dict:
    from mmdet.core import bbox2roi

    x, h, w, ph, pw = network_input(image)
    meta = [dict(img_shape=(h, w, 3), ori_shape=(h, w, 3), pad_shape=(ph, pw, 3),
                 scale_factor=1.0, flip=False, flip_direction=None,
                 batch_input_shape=(ph, pw))]  # fmt: skip
    feats = model.extract_feat(x)
    (proposals,) = model.rpn_head.simple_test_rpn(feats, meta)  # (N, 5): boxes, score
    head = model.roi_head
    out = head._bbox_forward(feats, bbox2roi([proposals[:, :4]]))
    stages = [{"logits": out["cls_score"], "deltas": out["bbox_pred"]}]
    per_class_boxes, per_class_masks = head.simple_test(feats, [proposals], meta, rescale=False)
    return {
        "proposals": proposals[:, :4],
        "proposal_scores": proposals[:, 4],
        "stages": stages,
        **grouped_by_class(per_class_boxes, per_class_masks),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("refinemask", type=Path, help="a checkout of zhanggang001/RefineMask")
    ap.add_argument("--out", type=Path, default=HERE.parents[1] / "tests" / "data" / "parity")
    args = ap.parse_args()
    model, cfg = build(args.refinemask)
    nms_in_float64()  # the same patches work on mmcv-full 1.x and mmdetection 2.x
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head, refine_mask_head

    refine_mask_head._do_paste_mask = fcn_mask_head._do_paste_mask  # the float32 paste
    import mmcv

    fields = {
        "versions": f"RefineMask (mmdet 2.3 fork), mmcv-full {mmcv.__version__}, torch "
        f"{torch.__version__}",
        "config": "RefineMask configs/refinemask/lvis/r50-refinemask-1x.py",
        "mmdet_version": "2.3.0",
        "grouped_by_class": True,
        "tailseg_overrides": TAILSEG,
        "test_cfg": {  # in mmdetection 3.x's words
            "rpn": {
                "nms_pre": cfg.test_cfg.rpn.nms_pre,
                "max_per_img": cfg.test_cfg.rpn.nms_post,
                "nms": {"iou_threshold": cfg.test_cfg.rpn.nms_thr},
            },
            "rcnn": dict(cfg.test_cfg.rcnn),
        },
    }
    for o in record(model, NAME, run, fields, args.out):
        print(f"{NAME}: {len(o['proposals'])} proposals, {len(o['boxes'])} detections")


if __name__ == "__main__":
    main()
