"""The run configuration: one frozen dataclass per section.

Sections grow with the features that read them. Value checks live in `__post_init__` and raise
`ValueError("field: message")`, which the loader turns into an error naming file and dotted key.
Every numeric field has a range (floats are also finite: the loader refuses NaN and infinity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RESNET_DEPTHS = (14, 26, 50, 101)  # the depths `models.backbones.resnet.BLOCKS` builds
MAX_SEED = 2**63 - 1


def _check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ValueError(f"{field_name}: {message}")


def _at_least(obj: object, low: float, *names: str) -> None:
    for name in names:
        _check(getattr(obj, name) >= low, name, f"must be >= {low:g}")


def _fraction(obj: object, *names: str, open_low: bool = False, open_high: bool = False) -> None:
    """Each field in [0, 1], `(0, ...` with open_low, `..., 1)` with open_high."""
    text = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
    for name in names:
        v = getattr(obj, name)
        ok = (v > 0 if open_low else v >= 0) and (v < 1 if open_high else v <= 1)
        _check(ok, name, f"must be in {text}")


def _each(
    obj: object, name: str, low: float, high: float | None = None, *, open_low: bool = False
) -> None:
    """Each item of a tuple field >= low (> low with open_low) and <= high; at least one item."""
    values = getattr(obj, name)
    _check(len(values) >= 1, name, "needs at least one value")
    if high is None:
        text = f"must be {'>' if open_low else '>='} {low:g}"
    else:
        text = f"must be in {'(' if open_low else '['}{low:g}, {high:g}]"
    for i, v in enumerate(values):
        ok = (v > low if open_low else v >= low) and (high is None or v <= high)
        _check(ok, f"{name}[{i}]", text)


@dataclass(frozen=True)
class SplitConfig:
    """One annotated split: an LVIS/COCO json and the folder its `file_name`s are relative to."""

    json: str = ""
    images: str = ""


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic long-tailed benchmark (see `tailseg.data.synth`)."""

    num_classes: int = 40
    train_images: int = 600
    val_images: int = 120
    seed: int = 0
    min_side: int = 160
    max_side: int = 256
    max_objects: int = 10

    def __post_init__(self) -> None:
        _check(self.num_classes >= 3, "num_classes", "must be >= 3 (one per r/c/f group)")
        _check(self.train_images >= 1, "train_images", "must be >= 1")
        _check(self.val_images >= 1, "val_images", "must be >= 1")
        _check(32 <= self.min_side <= self.max_side, "min_side", "need 32 <= min_side <= max_side")
        _check(self.max_objects >= 1, "max_objects", "must be >= 1")
        _check(0 <= self.seed <= MAX_SEED, "seed", "must be in 0..2**63-1")


@dataclass(frozen=True)
class AugmentConfig:
    """The training pipeline: RFS → mosaic → copy-paste → resize → flip → crop → colour jitter.

    Sizes are short sides (pixels); `max_size` caps the long side. A mosaic is four images at
    half the canvas's sides, the canvas then sized like any image: short side in
    `mosaic_scale_range`, null = `scale_range` (the report: 640–1400 for every image when
    mosaic is on, against 400–1400 without, so that its quarter-size objects are not too small).
    Copy-paste keeps a source instance of class c with probability
    `copy_paste_select_prob` · r(c) / r(source) (`copy_paste_balanced`; off: the same
    probability for all) and rescales the source to s × the destination's short side, s
    log-uniform in `copy_paste_scale_range`.
    """

    rfs_threshold: float = 0.001
    rfs_mode: Literal["stochastic", "ceil"] = "stochastic"
    scale_range: tuple[int, int] = (640, 1400)
    max_size: int = 1600
    mosaic_prob: float = 0.5
    mosaic_scale_range: tuple[int, int] | None = None
    copy_paste_prob: float = 0.5
    copy_paste_select_prob: float = 0.5
    copy_paste_balanced: bool = True
    copy_paste_scale_range: tuple[float, float] = (0.5, 2.0)
    flip_prob: float = 0.5
    crop_prob: float = 0.3
    crop_min_fraction: float = 0.6
    jitter_prob: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __post_init__(self) -> None:
        _fraction(self, "mosaic_prob", "copy_paste_prob", "copy_paste_select_prob", "flip_prob")
        _fraction(self, "crop_prob", "jitter_prob", "rfs_threshold", "brightness", "contrast")
        _fraction(self, "saturation")
        _fraction(self, "crop_min_fraction", open_low=True)
        _check(0.0 <= self.hue <= 0.5, "hue", "must be in [0, 0.5]")
        for name in ("scale_range", "mosaic_scale_range"):
            if getattr(self, name) is not None:
                lo, hi = getattr(self, name)
                _check(16 <= lo <= hi, name, "need 16 <= low <= high")
        lo, hi = self.copy_paste_scale_range
        _check(0.1 <= lo <= hi <= 10, "copy_paste_scale_range", "need 0.1 <= low <= high <= 10")
        _check(self.max_size >= self.scale_range[0], "max_size", "must be >= the smallest scale")


@dataclass(frozen=True)
class DataConfig:
    """Where the training and validation annotations live.

    With `synth` set, `tailseg demo` generates that benchmark under the run directory and uses it
    instead of `train`/`val`.
    """

    train: SplitConfig = field(default_factory=SplitConfig)
    val: SplitConfig = field(default_factory=SplitConfig)
    synth: SynthConfig | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 0
    allow_outside_root: bool = False  # image paths (file_name, coco_url) may leave the image root

    def __post_init__(self) -> None:
        _check(self.num_workers >= 0, "num_workers", "must be >= 0")


@dataclass(frozen=True)
class BackboneConfig:
    """`resnet` (torchvision layout) or `swin` (detection variant)."""

    kind: Literal["resnet", "swin"] = "resnet"
    depth: int = 50  # resnet: 14, 26, 50, 101
    base_width: int = 64  # resnet: channels of the stem; 64 is the standard width
    # 0: every backbone parameter trains; k >= 1: the stem (ResNet conv1 + bn1, Swin patch
    # embedding) and stages 1..k take no gradient (Swin: with their output norms, in eval mode).
    # One meaning for both kinds, mmdetection's frozen_stages=k for k >= 1 (its -1 is 0 here)
    frozen_stages: int = 1
    embed_dim: int = 96  # swin
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    drop_path: float = 0.2
    pretrained: str = ""  # torchvision ResNet or official Swin checkpoint (.pth)
    # CBNetV2: two networks of this kind and size, the assistant's levels composed into the
    # lead's stages; the pretrained checkpoint fills both (see models/backbones/cbnet.py)
    composite: bool = False
    cb_del_stages: int = 1  # the lead drops the stem (CBNetV2's setting; the only one built)
    checkpoint: bool = False  # swin: recompute block activations in backward (saves memory)

    def __post_init__(self) -> None:
        if self.kind == "resnet":
            depths = ", ".join(map(str, RESNET_DEPTHS))
            _check(self.depth in RESNET_DEPTHS, "depth", f"{self.depth} is not one of {depths}")
        _check(self.base_width >= 4, "base_width", "must be >= 4")
        top = 4 if self.kind == "resnet" else len(self.depths)  # stages
        _check(0 <= self.frozen_stages <= top, "frozen_stages", f"must be in 0..{top}")
        _check(len(self.depths) == len(self.num_heads) == 4, "depths", "need 4 stages")
        _at_least(self, 1, "embed_dim", "window_size")
        _each(self, "depths", 1)
        _each(self, "num_heads", 1)
        for i, heads in enumerate(self.num_heads):
            dim = self.embed_dim * 2**i
            _check(dim % heads == 0, f"num_heads[{i}]", f"must divide the stage's {dim} channels")
        _fraction(self, "drop_path", open_high=True)
        _check(self.cb_del_stages == 1, "cb_del_stages", "must be 1 (the lead drops its stem)")
        _check(not self.checkpoint or self.kind == "swin", "checkpoint", "is for kind: swin")


@dataclass(frozen=True)
class RPNConfig:
    anchor_scales: tuple[float, ...] = (8.0,)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    pos_iou: float = 0.7
    neg_iou: float = 0.3
    num_samples: int = 256
    pos_fraction: float = 0.5
    train_pre_nms: int = 2000
    train_proposals: int = 2000
    test_pre_nms: int = 1000
    test_proposals: int = 1000
    nms_iou: float = 0.7
    # anchors more than this many pixels outside an image are not training targets (ignored);
    # 0 (mmdetection's HTC) keeps only anchors inside the image, null uses every anchor
    allowed_border: float | None = 0.0

    def __post_init__(self) -> None:
        _each(self, "anchor_scales", 0, open_low=True)
        _each(self, "anchor_ratios", 0, open_low=True)
        _fraction(self, "pos_iou", "neg_iou", "pos_fraction")
        _check(self.neg_iou <= self.pos_iou, "neg_iou", "must be <= pos_iou")
        _at_least(self, 1, "num_samples", "train_pre_nms", "train_proposals")
        _at_least(self, 1, "test_pre_nms", "test_proposals")
        _fraction(self, "nms_iou", open_low=True)
        border = self.allowed_border
        _check(border is None or border >= 0, "allowed_border", "must be >= 0 or null")


@dataclass(frozen=True)
class RoIConfig:
    """The cascade: per-stage IoU thresholds, loss weights and delta stds; heads' sizes."""

    stage_ious: tuple[float, ...] = (0.5, 0.6, 0.7)
    stage_weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    stage_stds: tuple[tuple[float, ...], ...] = (
        (0.1, 0.1, 0.2, 0.2),
        (0.05, 0.05, 0.1, 0.1),
        (0.033, 0.033, 0.067, 0.067),
    )
    num_samples: int = 512
    pos_fraction: float = 0.25
    fc_dim: int = 1024
    mask_conv_dim: int = 256
    mask_num_convs: int = 4
    classifier: Literal["linear", "cosine"] = "linear"
    temperature: float = 20.0
    cls_loss: Literal["softmax", "seesaw"] = "softmax"
    seesaw_p: float = 0.8
    seesaw_q: float = 2.0
    seesaw_eps: float = 0.01
    box_loss_weight: float = 1.0  # scales the box head's classification and regression losses
    # one box per RoI (HTC, Cascade R-CNN), or false: one per class (4·C deltas, Mask R-CNN's
    # default), each detection taking its class's box
    class_agnostic_boxes: bool = True
    # one mask head per stage: "htc" (4 convs, 28×28) or "refinemask" (the last stage only:
    # 14 → 112 with a semantic branch and boundary-aware loss)
    mask_heads: tuple[Literal["htc", "refinemask"], ...] = ("htc", "htc", "htc")
    # the final mask: "mean" of every stage's (at the last head's size) or the "last" stage's
    mask_merge: Literal["mean", "last"] = "mean"
    mask_scoring: bool = False  # a MaskIoU head on the last stage: mask score = box × IoU
    mask_iou_weight: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.stage_ious)
        _check(n >= 1, "stage_ious", "need at least one stage")
        _check(len(self.stage_weights) == n, "stage_weights", f"need {n} values (one per stage)")
        _check(len(self.stage_stds) == n, "stage_stds", f"need {n} values (one per stage)")
        _check(len(self.mask_heads) == n, "mask_heads", f"need {n} values (one per stage)")
        for i, kind in enumerate(self.mask_heads[:-1]):
            _check(
                kind != "refinemask",
                f"mask_heads[{i}]",
                "refinemask is the last stage's head only (its 112×112 masks feed no later stage)",
            )
        if "refinemask" in self.mask_heads:
            _check(
                self.mask_conv_dim % 8 == 0 and self.mask_conv_dim >= 32,
                "mask_conv_dim",
                "RefineMask halves it three times: need a multiple of 8, >= 32",
            )
        _check(self.mask_iou_weight >= 0, "mask_iou_weight", "must be >= 0")
        _check(all(len(s) == 4 for s in self.stage_stds), "stage_stds", "each needs 4 values")
        _each(self, "stage_ious", 0, 1)
        _each(self, "stage_weights", 0)
        for i, stds in enumerate(self.stage_stds):
            _check(all(v > 0 for v in stds), f"stage_stds[{i}]", "must be > 0")
        _at_least(self, 1, "num_samples", "fc_dim", "mask_conv_dim", "mask_num_convs")
        _fraction(self, "pos_fraction")
        _check(self.temperature > 0, "temperature", "must be > 0")
        _at_least(self, 0, "seesaw_p", "seesaw_q", "box_loss_weight")
        _check(self.seesaw_eps > 0, "seesaw_eps", "must be > 0")


@dataclass(frozen=True)
class ModelConfig:
    num_classes: int = 1203
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fpn_channels: int = 256
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    # CBNetV2 (backbone.composite): the assistant's RPN and RoI losses count with this weight
    assist_loss_weight: float = 0.5

    def __post_init__(self) -> None:
        _check(self.num_classes >= 1, "num_classes", "must be >= 1")
        _check(self.assist_loss_weight >= 0, "assist_loss_weight", "must be >= 0")
        _check(self.fpn_channels >= 1, "fpn_channels", "must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation (AdamW, warm-up + steps, EMA, early stopping) and the run's upkeep."""

    epochs: int = 20
    batch_size: int = 2  # per process
    lr: float = 1e-4
    weight_decay: float = 0.05
    # parameters without weight decay: norms, biases and position tables, or (the Swin
    # recipe's paramwise_cfg, as the Swin configs set) norms and position tables only
    no_decay: Literal["norms_biases_positions", "norms_positions"] = "norms_biases_positions"
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    lr_steps: tuple[int, ...] = (16, 19)  # epochs at which the lr is divided by 10
    # `lr` is meant for this total batch (processes × batch_size); another total scales it
    # linearly (Goyal et al.), logged at the start. None: `lr` as it is.
    lr_reference_batch: int | None = None
    grad_clip: float | None = None  # max global gradient norm
    ema: bool = True
    ema_momentum: float = 2e-4
    ema_gamma: float = 2000.0
    early_stop_metric: str = "segm.AP"  # a key of the per-epoch metrics
    patience: int | None = None  # epochs without improvement before stopping
    # the run's result (metrics.json, best.pt): the "best" epoch by early_stop_metric (the
    # report's early stopping: its epoch-6 model of 20) or the "last" epoch trained
    select: Literal["best", "last"] = "best"
    amp: Literal["off", "bf16", "fp16"] = "off"  # the report trains in FP32
    dtype: Literal["float32", "float64"] = "float32"  # float64: numerical checks only (slow)
    seed: int = 0
    checkpoint_every: int = 200  # iterations between mid-epoch checkpoints (last.pt)
    max_iters_per_epoch: int | None = None  # cut epochs short (smoke runs)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", "must be >= 1")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.lr > 0, "lr", "must be > 0")
        ref = self.lr_reference_batch
        _check(ref is None or ref >= 1, "lr_reference_batch", "must be >= 1 or null")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(self.warmup_iters >= 0, "warmup_iters", "must be >= 0")
        _check(0 < self.warmup_ratio <= 1, "warmup_ratio", "must be in (0, 1]")
        _check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null")
        _check(self.patience is None or self.patience >= 1, "patience", "must be >= 1 or null")
        _check(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        _check(self.dtype == "float32" or self.amp == "off", "dtype", "float64 needs amp: off")
        if self.lr_steps:
            _each(self, "lr_steps", 1)
        _fraction(self, "ema_momentum", open_low=True)
        _check(self.ema_gamma > 0, "ema_gamma", "must be > 0")
        _check(0 <= self.seed <= MAX_SEED, "seed", "must be in 0..2**63-1")
        cut = self.max_iters_per_epoch
        _check(cut is None or cut >= 1, "max_iters_per_epoch", "must be >= 1 or null")


@dataclass(frozen=True)
class EvalConfig:
    """Per-epoch evaluation on the val split, in process."""

    protocol: Literal["coco", "lvis", "challenge2021"] = "lvis"
    iou_types: tuple[Literal["bbox", "segm", "boundary"], ...] = ("segm",)
    max_dets_per_image: int | None = 300
    challenge: bool = True  # also AP‡ (challenge2021) at every evaluation
    max_images: int | None = None  # evaluate on the first N val images only

    def __post_init__(self) -> None:
        cap = self.max_dets_per_image
        _check(cap is None or cap >= 1, "max_dets_per_image", "must be >= 1 or null (no cap)")
        n = self.max_images
        _check(n is None or n >= 1, "max_images", "must be >= 1 or null (all images)")


@dataclass(frozen=True)
class InferConfig:
    max_per_img: int = 300
    score_thr: float = 1e-4
    nms_iou: float = 0.5
    short_side: int = 800  # test scale: images are resized so, long side at most max_size
    max_size: int = 1333
    mask_threshold: float = 0.5
    # test-time augmentation, used by `tailseg predict` when `tta` is on (`--tta`; the per-epoch
    # evaluation never uses it): (long side cap, short side) per scale, each also flipped if
    # tta_flip; no scales = the single test scale. The report's, in the LVIS configs:
    # (1600,1000) (1600,1400) (1800,1200) (1800,1600) with flip.
    tta: bool = False
    tta_scales: tuple[tuple[int, int], ...] = ()
    tta_flip: bool = True
    # hold every augmentation's FPN features through TTA's three phases (fast), or recompute
    # them per phase, one frame at a time (two more backbone passes, a fraction of the memory)
    tta_hold_features: bool = True

    def __post_init__(self) -> None:
        _check(1 <= self.max_per_img <= 10000, "max_per_img", "must be in 1..10000")
        _check(0.0 <= self.score_thr < 1.0, "score_thr", "must be in [0, 1)")
        _check(0.0 < self.nms_iou <= 1.0, "nms_iou", "must be in (0, 1]")
        _at_least(self, 1, "short_side", "max_size")
        _fraction(self, "mask_threshold")
        for i, scale in enumerate(self.tta_scales):
            _check(min(scale) >= 1, f"tta_scales[{i}]", "sizes must be >= 1")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    infer: InferConfig = field(default_factory=InferConfig)
