"""Config loading: base chain, overrides, type checks that name file and key, round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tailseg.config import Config, ConfigError, dump, load_config
from tailseg.config.loader import load

CONFIGS = Path(__file__).resolve().parents[1] / "tailseg" / "configs"

REPO = Path(__file__).resolve().parents[1]
TINY = CONFIGS / "tiny.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    write(tmp_path, "base.yaml", "train:\n  epochs: 20\n  lr: 0.0001\nmodel:\n  num_classes: 7\n")
    return write(tmp_path, "child.yaml", "base: base.yaml\ntrain:\n  epochs: 3\n")


def test_base_chain_merges_deeply(chain: Path) -> None:
    cfg = load_config(str(chain))
    assert cfg.train.epochs == 3  # child wins
    assert cfg.train.lr == 1e-4  # sibling key kept from the base
    assert cfg.model.num_classes == 7
    assert cfg.train.batch_size == Config().train.batch_size  # dataclass default


def test_dotted_overrides_parse_yaml_values(chain: Path) -> None:
    cfg = load_config(
        str(chain),
        ["train.lr=2e-4", "eval.iou_types=[segm, bbox]", "eval.max_dets_per_image=null"],
    )
    assert cfg.train.lr == 2e-4
    assert cfg.eval.iou_types == ("segm", "bbox")
    assert cfg.eval.max_dets_per_image is None


def test_unknown_key_names_the_file_that_set_it(tmp_path: Path, chain: Path) -> None:
    write(tmp_path, "base.yaml", "train:\n  epochz: 20\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(chain))
    assert str(tmp_path / "base.yaml") in str(e.value)
    assert "train.epochz: unknown key" in str(e.value)


def test_unknown_override_key_names_command_line(chain: Path) -> None:
    with pytest.raises(ConfigError, match=r"command line: model\.neck: unknown key"):
        load_config(str(chain), ["model.neck.channels=50"])


def test_a_renamed_key_says_what_to_write_instead(tmp_path: Path) -> None:
    old = write(tmp_path, "old.yaml", "model:\n  roi:\n    mask_head: htc\n")
    with pytest.raises(ConfigError, match=r"old\.yaml: model\.roi\.mask_head: .*mask_heads"):
        load_config(str(old))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=three", r"command line: train\.epochs: expected an integer, got 'three'"),
        ("train.epochs=2.5", r"train\.epochs: expected an integer"),
        ("train.epochs=true", r"train\.epochs: expected an integer"),
        ("eval.protocol=voc", r"eval\.protocol: 'voc' is not one of 'coco', 'lvis'"),
        ("eval.iou_types=[mask]", r"eval\.iou_types\[0\]: 'mask' is not one of"),
        ("train.lr=-1", r"command line: train\.lr: must be > 0"),
        ("train=3", r"train: expected a section"),
        ("data.synth.num_classes=2", r"data\.synth\.num_classes: must be >= 3"),
        ("model.backbone.depth=27", r"model\.backbone\.depth: 27 is not one of 14, 26, 50, 101"),
        ("model.fpn_channels=0", r"command line: model\.fpn_channels: must be >= 1"),
        ("model.roi.fc_dim=0", r"command line: model\.roi\.fc_dim: must be >= 1"),
        ("train.weight_decay=-0.1", r"command line: train\.weight_decay: must be >= 0"),
        ("train.ema_momentum=1.5", r"command line: train\.ema_momentum: must be in \(0, 1\]"),
        ("infer.short_side=0", r"command line: infer\.short_side: must be >= 1"),
        ("infer.mask_threshold=1.5", r"infer\.mask_threshold: must be in \[0, 1\]"),
        ("model.rpn.pos_iou=1.2", r"command line: model\.rpn\.pos_iou: must be in \[0, 1\]"),
        ("model.rpn.nms_iou=1.2", r"command line: model\.rpn\.nms_iou: must be in \(0, 1\]"),
        ("model.roi.stage_ious=[0.5, 0.6, 1.7]", r"model\.roi\.stage_ious\[2\]: must be in"),
        ("model.backbone.num_heads=[5, 6, 12, 24]", r"num_heads\[0\]: must divide the stage's 96"),
        ("data.augment.hue=0.7", r"command line: data\.augment\.hue: must be in \[0, 0\.5\]"),
        ("train.lr=.nan", r"command line: train\.lr: expected a finite number, got nan"),
        ("train.lr=.inf", r"command line: train\.lr: expected a finite number, got inf"),
        ("eval.max_images=0", r"command line: eval\.max_images: must be >= 1 or null"),
        ("train.seed=-1", r"command line: train\.seed: must be in 0\.\.2\*\*63-1"),
        (
            "train.lr_steps=[a]",
            r"^command line: train\.lr_steps\[0\]: expected an integer, got 'a'",
        ),
        ("train.lr_steps=[0]", r"^command line: train\.lr_steps\[0\]: must be >= 1"),
        ("train.lr_steps=&x [*x]", r"command line: train\.lr_steps\[0\]: recursive YAML alias"),
        ("model.roi={fc_dim: 1, fc_dim: 2}", r"command line: model\.roi\.fc_dim: duplicate key"),
    ],
)
def test_wrong_types_and_values_are_rejected(chain: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(str(chain), [override])


def test_wrong_type_in_file_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "infer:\n  max_per_img: many\n")
    with pytest.raises(ConfigError, match=rf"{path}: infer\.max_per_img: expected an integer"):
        load_config(str(path))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{path}: line \d+ column \d+ malformed YAML"):
        load_config(str(path))


def test_base_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "base: b.yaml\n")
    write(tmp_path, "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(tmp_path / "a.yaml"))


def test_missing_base_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read config file"):
        load_config(str(path))


def test_optional_section_can_be_switched_off(tmp_path: Path) -> None:
    cfg = load_config(str(REPO / "tailseg" / "configs" / "tiny.yaml"), ["data.synth=null"])
    assert cfg.data.synth is None


def test_configs_are_frozen() -> None:
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "path", sorted((REPO / "tailseg" / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_round_trips(path: Path, tmp_path: Path) -> None:
    cfg = load_config(str(path))
    dumped = write(tmp_path, "resolved.yaml", dump(cfg))
    assert load(Config, dumped) == cfg


def test_list_item_in_base_file_is_blamed_on_that_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "train:\n  lr_steps: [3, x]\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\ntrain:\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: train\.lr_steps\[1\]: expected an integer"):
        load_config(str(child))


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", "train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value) == f"{path}: train.epochs: duplicate key (lines 2 and 4)"


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = "infer: &i {short_side: 100, max_size: 200}\n"
    path = write(tmp_path, "merge.yaml", text + "model: {num_classes: 3}\n")
    assert load_config(str(path)).infer.short_side == 100


# 10**6 values through aliases: e repeats d ten times, d repeats c, ... a holds ten ones
ALIAS_BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [*x]\n", r"a\[0\]: recursive YAML alias"),
        ("x: " + "[" * 1000 + "]" * 1000 + "\n", r"<root>: YAML nested too deeply"),
        (ALIAS_BOMB, r"YAML expands to over 100,000 values"),
    ],
)
def test_hostile_yaml_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}: ")


def test_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  device: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8 text"):
        load_config(str(path))


@pytest.mark.parametrize(
    "name", ["lvis_v1", "htc_r50_fpn_lvis", *(f"htc_swin_{s}_fpn_lvis" for s in "tsbl")]
)
def test_lvis_configs_keep_the_reports_epoch_and_batch(name: str) -> None:
    """mmdetection's ClassBalancedDataset repeats each image ceil(r) times per epoch (the
    report's 20 epochs); its batch 16 is 8 processes × 2 with lr 1e-4."""
    cfg = load_config(str(CONFIGS / f"{name}.yaml"))
    assert cfg.data.augment.rfs_mode == "ceil"
    assert (cfg.train.batch_size, cfg.train.lr_reference_batch, cfg.train.lr) == (2, 16, 1e-4)


@pytest.mark.parametrize("word", ["off", "Off", "OFF"])
def test_unquoted_off_means_the_option_off_not_a_bool(word: str, tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted `off` as false; a choice that has "off" takes it as that word
    cfg = load_config(str(TINY), ["train.amp=bf16", f"train.amp={word}"])
    assert cfg.train.amp == "off"
    path = write(tmp_path, "amp.yaml", f"base: {TINY}\ntrain:\n  amp: {word}\n")
    assert load_config(str(path)).train.amp == "off"
    with pytest.raises(ConfigError, match=r"train\.amp: True is not one of 'off', 'bf16'"):
        load_config(str(TINY), ["train.amp=on"])  # no choice is called on/yes/true
