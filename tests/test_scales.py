"""The report's rows as configs (tailseg/configs/fuxi2021/) and the scales they run at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailseg.config import Config, ConfigError, load, to_dict
from tailseg.config.scales import load_scale, load_scaled, scale_names

FUXI = Path(__file__).resolve().parents[1] / "tailseg" / "configs" / "fuxi2021"
ROWS = sorted(p for p in FUXI.rglob("*.yaml") if p.parent.name not in ("scales", "tables"))


def flat(cfg: Config) -> dict[str, object]:
    out: dict[str, object] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(to_dict(cfg), "")
    return out


def changed(a: Path, b: Path) -> dict[str, tuple[object, object]]:
    fa, fb = flat(load(Config, a)), flat(load(Config, b))
    return {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}


def test_scales_are_tiny_small_full() -> None:
    assert scale_names() == ["full", "small", "tiny"]


@pytest.mark.parametrize("path", ROWS, ids=lambda p: str(p.relative_to(FUXI)))
@pytest.mark.parametrize("scale", ["full", "small", "tiny"])
def test_every_row_loads_at_every_scale(path: Path, scale: str) -> None:
    cfg = load_scaled(path, scale)
    assert cfg.model.roi.box_loss_weight == 2.0 and cfg.model.roi.cls_loss == "seesaw"
    assert cfg.model.roi.classifier == "cosine"
    if scale != "full":
        assert cfg.data.synth is not None and cfg.model.num_classes == cfg.data.synth.num_classes
    first = path.read_text().splitlines()[0]
    assert first.startswith(("# Report Table", "# The whole system"))  # names its table and row


def test_each_row_changes_only_what_its_table_says() -> None:
    t1 = FUXI / "table1"
    assert changed(t1 / "row1_weak_baseline.yaml", t1 / "row2_copy_paste.yaml") == {
        "data.augment.copy_paste_prob": (0.0, 0.5)
    }
    assert changed(t1 / "row2_copy_paste.yaml", t1 / "row3_mosaic.yaml") == {
        "data.augment.mosaic_prob": (0.0, 0.5),
        "data.augment.scale_range": ([400, 1400], [640, 1400]),  # the report's B-M range
    }
    assert changed(t1 / "row3_mosaic.yaml", t1 / "row4_cbnetv2.yaml") == {
        "model.backbone.composite": (False, True),
        "train.lr": (1e-4, 5e-5),
    }
    assert changed(t1 / "row1_weak_baseline.yaml", FUXI / "table2" / "row2_refinemask.yaml") == {
        "model.roi.mask_heads": (["htc"] * 3, ["htc", "htc", "refinemask"])
    }
    t3 = FUXI / "table3"
    assert changed(t1 / "row4_cbnetv2.yaml", t3 / "row2_ema_fp32_refinemask.yaml") == {
        "model.roi.mask_heads": (["htc"] * 3, ["htc", "htc", "refinemask"]),
        "train.amp": ("fp16", "off"),
        "train.ema": (False, True),
        "train.select": ("last", "best"),
        "train.patience": (None, 4),
    }
    assert changed(t3 / "row2_ema_fp32_refinemask.yaml", t3 / "row3_mask_scoring.yaml") == {
        "model.roi.mask_scoring": (False, True)
    }
    assert changed(t3 / "row3_mask_scoring.yaml", FUXI / "final.yaml") == {
        "infer.max_per_img": (300, 1000),
        "infer.tta": (False, True),
    }


def test_the_weak_baseline_is_the_reports() -> None:
    cfg = load(Config, FUXI / "table1" / "row1_weak_baseline.yaml")
    assert cfg.model.backbone.kind == "swin" and cfg.model.backbone.embed_dim == 192  # Swin-L
    assert cfg.data.augment.rfs_threshold == 0.001 and cfg.data.augment.scale_range == (400, 1400)
    assert cfg.train.epochs == 20 and cfg.model.num_classes == 1203
    assert not cfg.model.roi.mask_scoring and cfg.model.roi.mask_heads == ("htc",) * 3


def test_a_scale_multiplies_pixels_and_lr_and_keeps_a_rows_relative_change() -> None:
    t1 = FUXI / "table1"
    full = load(Config, t1 / "row3_mosaic.yaml")
    tiny = load_scaled(t1 / "row3_mosaic.yaml", "tiny")
    f = load_scale("tiny").pixel_factor
    assert tiny.data.augment.scale_range == (round(640 * f), round(1400 * f))
    assert tiny.infer.short_side == round(full.infer.short_side * f)
    assert tiny.infer.tta_scales[0] == (round(1600 * f), round(1000 * f))
    assert tiny.train.lr == pytest.approx(full.train.lr * 4.0)
    cb = load_scaled(t1 / "row4_cbnetv2.yaml", "tiny")
    assert cb.train.lr == pytest.approx(tiny.train.lr / 2)  # CBNetV2's half lr, at every scale
    assert cb.model.backbone.composite and cb.model.backbone.kind == "resnet"
    # mixed precision becomes the scale's (bf16 on CPU); FP32 rows stay FP32
    assert tiny.train.amp == "bf16" and load_scaled(FUXI / "final.yaml", "tiny").train.amp == "off"
    assert load_scaled(t1 / "row3_mosaic.yaml", "full") == full


def test_command_line_overrides_come_last_and_are_not_scaled() -> None:
    path = FUXI / "table1" / "row1_weak_baseline.yaml"
    cfg = load_scaled(path, "tiny", ["data.augment.scale_range=[100,200]", "train.lr=0.01"])
    assert cfg.data.augment.scale_range == (100, 200) and cfg.train.lr == 0.01
    with pytest.raises(ConfigError, match=r"^command line: train\.lr: expected a number"):
        load_scaled(path, "tiny", ["train.lr=fast"])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("pixel_factor: 0.5\nzoom: 2\n", r"zoom: unknown key"),
        ("pixel_factor: -1\n", r"pixel_factor: must be a number"),
        ("mixed_precision: fp8\n", r"mixed_precision: must be bf16 or fp16"),
        (
            "overrides:\n  model:\n    backbone:\n      dept: 26\n",
            r"model\.backbone\.dept: unknown",
        ),
        ("overrides:\n  train:\n    epochs: many\n", r"train\.epochs: expected an integer"),
    ],
)
def test_bad_scale_files_name_file_and_key(tmp_path: Path, text: str, error: str) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"s\.yaml: " + error):
        load_scale(str(bad))


def test_an_unknown_scale_lists_the_scales() -> None:
    with pytest.raises(ConfigError, match=r"huge: no such scale \(scales: full, small, tiny\)"):
        load_scale("huge")


def test_the_demo_trains_the_whole_system_at_the_small_scale(monkeypatch, tmp_path: Path) -> None:
    import tailseg.engine.trainer as trainer
    from tailseg.cli.main import main

    seen = []

    def fake_train(cfg, out, **kwargs):
        seen.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "train.seed=2"])
    (cfg,) = seen
    assert cfg == load_scaled(FUXI / "final.yaml", "small", ["train.seed=2"])
    assert cfg.model.backbone.composite and cfg.model.roi.mask_heads[-1] == "refinemask"
    assert cfg.model.roi.mask_scoring and cfg.model.roi.cls_loss == "seesaw"
    assert cfg.data.augment.copy_paste_prob > 0 and cfg.data.augment.mosaic_prob > 0
    assert cfg.train.ema and cfg.train.select == "best" and cfg.data.synth is not None
    with pytest.raises(SystemExit):  # another config: no scale unless asked
        main(["demo", "tiny", "--out", str(tmp_path)])
    assert seen[1] == load(Config, FUXI.parent / "tiny.yaml")
