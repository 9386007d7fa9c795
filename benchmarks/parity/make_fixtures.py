"""mmdetection's own outputs for small random-weight models: the fixtures of tests/test_parity.py.

    bash benchmarks/parity/build_mmdet.sh            # once, ~11 min: mmdet 3.3 + mmcv 2.2
    benchmarks/parity/.venv/bin/python benchmarks/parity/make_fixtures.py [--out tests/data/parity]

For each model below, mmdetection 3.3 builds it from its own config (shrunk: a few classes,
narrow channels), every float tensor of its state dict is drawn from the recipe in
`tests/parity_recipe.py` (so the fixture stores keys, shapes and a seed, not weights), and it
runs in float64 (mmcv's float32-only NMS op replaced by torchvision's, see `nms_in_float64`)
on photos of tests/data/coco_sample43 at their own size (no resize: the two
toolkits resize differently, which is not the model). Saved per model, in `NAME.pt` (plain
tensors, lists and strings): the state dict's keys and shapes, the seed, the photos, the test
settings, and mmdetection's outputs — RPN proposals and scores; each stage's class logits and
regressed boxes on those proposals; the final boxes, scores, labels and RLE masks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from parity_recipe import recipe_state  # noqa: E402

PHOTOS = ROOT / "tests" / "data" / "coco_sample43" / "images"
NUM_CLASSES = 8
MEAN = torch.tensor([123.675, 116.28, 103.53], dtype=torch.float64).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375], dtype=torch.float64).view(3, 1, 1)


def shrink(cfg, fpn: int = 32, fc: int = 64, mask: int = 32) -> None:
    """A few classes and narrow heads, in place (mmengine ConfigDict)."""
    m = cfg.model
    m.neck.out_channels = fpn
    m.rpn_head.in_channels = m.rpn_head.feat_channels = fpn
    heads = (
        m.roi_head.bbox_head if isinstance(m.roi_head.bbox_head, list) else [m.roi_head.bbox_head]
    )
    for h in heads:
        h.in_channels, h.fc_out_channels, h.num_classes = fpn, fc, NUM_CLASSES
    masks = (
        m.roi_head.mask_head if isinstance(m.roi_head.mask_head, list) else [m.roi_head.mask_head]
    )
    for h in masks:
        h.in_channels, h.conv_out_channels, h.num_classes = fpn, mask, NUM_CLASSES
    m.roi_head.bbox_roi_extractor.out_channels = fpn
    m.roi_head.mask_roi_extractor.out_channels = fpn
    if "mask_iou_head" in m.roi_head:
        iou = m.roi_head.mask_iou_head
        iou.in_channels, iou.conv_out_channels = fpn, mask
        iou.fc_out_channels, iou.num_classes = fc, NUM_CLASSES


def resnet_small(cfg) -> None:
    b = cfg.model.backbone
    b.base_channels, b.init_cfg, b.style = 16, None, "pytorch"
    cfg.model.neck.in_channels = [64, 128, 256, 512]


def swin_small(cfg) -> None:
    cfg.model.backbone = dict(
        type="SwinTransformer", embed_dims=24, depths=[1, 1, 2, 1], num_heads=[1, 2, 3, 6],
        window_size=7, mlp_ratio=4, qkv_bias=True, patch_norm=True, out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0, convert_weights=False, init_cfg=None,
    )  # fmt: skip
    cfg.model.neck.in_channels = [24, 48, 96, 192]


def seesaw_cosine(cfg) -> None:
    for h in cfg.model.roi_head.bbox_head:
        h.cls_predictor_cfg = dict(type="NormedLinear", tempearture=20)
        h.loss_cls = dict(type="SeesawLoss", p=0.8, q=2.0, num_classes=NUM_CLASSES, loss_weight=1.0)


ONE_STAGE = [
    "model.roi.stage_ious=[0.5]", "model.roi.stage_weights=[1.0]",
    "model.roi.stage_stds=[[0.1,0.1,0.2,0.2]]", "model.roi.mask_heads=[htc]",
]  # fmt: skip
RESNET = ["model.backbone.kind=resnet", "model.backbone.depth=50", "model.backbone.base_width=16"]

MODELS = {
    # name: (mmdetection config, changes, tailseg overrides, photos)
    "htc_r50": (
        "htc/htc-without-semantic_r50_fpn_1x_coco.py",
        [resnet_small],
        RESNET,
    ),
    "mask_rcnn_r50": ("mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", [resnet_small], RESNET + ONE_STAGE),
    "ms_rcnn_r50": (
        "ms_rcnn/ms-rcnn_r50-caffe_fpn_1x_coco.py",
        [resnet_small],
        [*RESNET, *ONE_STAGE, "model.roi.mask_scoring=true"],
    ),
    "cascade_swin_seesaw": (
        "cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py",
        [swin_small, seesaw_cosine],
        [
            "model.backbone.kind=swin",
            "model.backbone.embed_dim=24",
            "model.backbone.depths=[1,1,2,1]",
            "model.backbone.num_heads=[1,2,3,6]",
            "model.backbone.window_size=7",
            "model.roi.classifier=cosine",
            "model.roi.cls_loss=seesaw",
        ],
    ),
}
PHOTO_NAMES = ["000000000136.jpg", "000000000073.jpg"]  # 500×374 and 565×640: padded


def nms_in_float64() -> None:
    """mmcv's CPU NMS takes float32 only; in its place, torchvision's (the same rule: a box whose
    IoU with a kept higher-scoring box exceeds the threshold is dropped, no +1), so that the
    models run in float64 and a float-noise tie cannot decide a comparison."""
    import mmcv.ops  # noqa: F401  (its `nms` function hides the module of the same name)
    import torchvision

    mmcv_nms = sys.modules["mmcv.ops.nms"]

    def apply(boxes, scores, iou_threshold, offset, score_threshold, max_num):
        assert offset == 0
        valid = torch.nonzero(scores > score_threshold).squeeze(1)
        inds = valid[torchvision.ops.nms(boxes[valid], scores[valid], float(iou_threshold))]
        return inds[:max_num] if max_num > 0 else inds

    mmcv_nms.NMSop.apply = staticmethod(apply)
    # mask pasting samples float32 masks on a grid of the boxes' dtype: paste in float32, as
    # mmdetection does in its own float32 runs (the masks are binarised right after)
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head

    paste = fcn_mask_head._do_paste_mask
    fcn_mask_head._do_paste_mask = lambda masks, boxes, *a, **k: paste(
        masks.float(), boxes.float(), *a, **k
    )


MASK_LOGITS = r"(conv_logits|instance_logits|final_instance_logits)"


def center_mask_logits(model, image: torch.Tensor, run_model) -> dict[str, torch.Tensor]:
    """Random mask heads give logits of one sign per class (their inputs are ReLU outputs),
    i.e. empty or full masks, which would compare nothing: the mask-logit layers' biases are
    set, on the first photo, so that each class's logits average 0 (three passes, for heads that
    feed one another). Returned for the fixture; the tests set the same biases."""
    import re

    modules = {n: m for n, m in model.named_modules() if re.search(MASK_LOGITS + "$", n)}
    for _ in range(3):
        outs: dict[str, list] = {n: [] for n in modules}
        hooks = [
            m.register_forward_hook(lambda mod, i, o, n=n, outs=outs: outs[n].append(o.detach()))
            for n, m in modules.items()
        ]
        run_model(model, image)
        for h in hooks:
            h.remove()
        for n, m in modules.items():
            if outs[n]:
                o = torch.cat([x.transpose(0, 1).reshape(x.shape[1], -1) for x in outs[n]], 1)
                m.bias.data -= o.mean(1)
    return {f"{n}.bias": m.bias.detach().clone() for n, m in modules.items()}


def build(name: str):
    import mmdet
    from mmdet.registry import MODELS as REGISTRY
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    path, changes, _ = MODELS[name]
    cfg = Config.fromfile(str(Path(mmdet.__file__).parent / ".mim" / "configs" / path))
    shrink(cfg)
    for change in changes:
        change(cfg)
    cfg.model.test_cfg.rcnn.score_thr = 0.001
    cfg.model.test_cfg.rcnn.max_per_img = 100
    model = REGISTRY.build(cfg.model)
    return model.eval().double(), cfg


def read_photo(path: Path) -> torch.Tensor:
    """RGB uint8 (3, H, W), as tailseg reads it (PIL; these photos carry no EXIF rotation)."""
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


def network_input(image: torch.Tensor) -> tuple[torch.Tensor, int, int, int, int]:
    """(1, 3, H', W') float64: normalised as mmdetection's (and tailseg's) preprocessor does,
    then zero-padded to a multiple of 32; and h, w, H', W'."""
    h, w = image.shape[-2:]
    x = (image.double() - MEAN) / STD
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    return torch.nn.functional.pad(x, (0, pw - w, 0, ph - h))[None], h, w, ph, pw


def grouped_by_class(per_class_boxes: list, per_class_masks: list) -> dict:
    """mmdetection 2.x's results (per class: (n, 5) boxes + score, n bitmaps) as the fixture's
    boxes, scores, labels and RLEs, class by class."""
    boxes, scores, labels, rles = [], [], [], []
    for c, (b, ms) in enumerate(zip(per_class_boxes, per_class_masks, strict=True)):
        for row, m in zip(b, ms, strict=True):
            boxes.append(row[:4])
            scores.append(row[4])
            labels.append(c)
            rles.append(mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"])
    return {
        "boxes": torch.tensor(np.array(boxes, dtype=np.float64)).reshape(-1, 4),
        "scores": torch.tensor(np.array(scores, dtype=np.float64)),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "rles": [r.decode("ascii") for r in rles],
    }


def record(model, name: str, run_model, fields: dict, out: Path) -> list[dict]:
    """Fill `model` from the recipe (seeded by its name), centre its mask logits, run it on the
    photos and save the fixture `out/name.pt` with `fields` (versions, config, test settings,
    tailseg overrides); the outputs, per photo."""
    sd = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items() if v.is_floating_point()}
    seed = sum(map(ord, name))
    model.load_state_dict(recipe_state(shapes, seed), strict=False)
    biases = center_mask_logits(model, read_photo(PHOTOS / PHOTO_NAMES[0]), run_model)
    outputs = [run_model(model, read_photo(PHOTOS / p)) for p in PHOTO_NAMES]
    fixture = {
        "name": name,
        **fields,
        "num_classes": NUM_CLASSES,
        "keys": list(sd),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "float_keys": list(shapes),
        "seed": seed,
        "bias_overrides": biases,
        "photos": PHOTO_NAMES,
        "outputs": outputs,
    }
    out.mkdir(parents=True, exist_ok=True)
    torch.save(_plain(fixture), out / f"{name}.pt")
    print(f"{name}: {len(sd)} tensors → {out / name}.pt")
    return outputs


@torch.no_grad()
def run(model, image: torch.Tensor) -> dict:
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import bbox2roi

    x, h, w, ph, pw = network_input(image)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(ph, pw), scale_factor=(1.0, 1.0),
                batch_input_shape=(ph, pw), img_id=0)  # fmt: skip
    sample = DetDataSample(metainfo=meta)
    feats = model.extract_feat(x)
    proposals = model.rpn_head.predict(feats, [sample], rescale=False)[0]
    head = model.roi_head
    rois = bbox2roi([proposals.bboxes])
    stages = []
    if not hasattr(head, "num_stages"):  # Mask R-CNN: one head, its raw outputs
        out = head._bbox_forward(feats, rois)
        stages.append({"logits": out["cls_score"], "deltas": out["bbox_pred"]})
    for i in range(getattr(head, "num_stages", 0)):
        out = head._bbox_forward(i, feats, rois)
        deltas = out["bbox_pred"]
        boxes = head.bbox_head[i].bbox_coder.decode(rois[:, 1:], deltas, max_shape=(h, w))
        stages.append({"logits": out["cls_score"], "deltas": deltas, "boxes": boxes})
        rois = torch.cat([rois[:, :1], boxes], dim=1)
    (det,) = head.predict(feats, [proposals], [sample], rescale=False)
    masks = det.masks.cpu().numpy().astype(np.uint8)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(masks) else []
    return {
        "proposals": proposals.bboxes,
        "proposal_scores": proposals.scores,
        "stages": stages,
        "boxes": det.bboxes,
        "scores": det.scores,
        "labels": det.labels,
        "rles": [r["counts"].decode("ascii") for r in rles],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "parity")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    import mmcv
    import mmdet

    nms_in_float64()
    for name in args.models.split(","):
        model, cfg = build(name)
        fields = {
            "versions": f"mmdet {mmdet.__version__}, mmcv {mmcv.__version__}, "
            f"torch {torch.__version__}",
            "config": MODELS[name][0],
            "tailseg_overrides": MODELS[name][2],
            "test_cfg": {
                "rpn": dict(cfg.model.test_cfg.rpn),
                "rcnn": dict(cfg.model.test_cfg.rcnn),
            },
        }
        for o in record(model, name, run, fields, args.out):
            sc, st = o["proposal_scores"], o["stages"][-1]
            print(
                f"{name}: {len(o['proposals'])} proposals (scores {sc.min():.3f}–{sc.max():.3f}), "
                f"last stage logits sd {st['logits'].std():.2f}, deltas sd "
                f"{st['deltas'].std():.3f}, {len(o['boxes'])} detections, scores "
                f"{o['scores'].min():.4f}–{o['scores'].max():.4f}"
            )


def _plain(x):
    """Tensors as float32/int64 contiguous CPU tensors, containers as lists and dicts."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().contiguous()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


if __name__ == "__main__":
    main()
