"""`tailseg ablate`'s parts: tables, statistics, run planning and the checks on a study folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailseg.config import dump
from tailseg.config.scales import load_scale
from tailseg.errors import ConfigError, RunDirError
from tailseg.study import report
from tailseg.study.runner import check_existing, claim_study, plan
from tailseg.study.stats import Cell, fmt, step
from tailseg.study.table import load_table, table_names

FUXI = Path(__file__).resolve().parents[1] / "tailseg" / "configs" / "fuxi2021"
TINY = Path(__file__).resolve().parents[1] / "tailseg" / "configs" / "tiny.yaml"


# --------------------------------------------------------------------------- statistics
def test_cell_mean_and_sample_sd_by_hand() -> None:
    c = Cell({0: 10.0, 1: 12.0, 2: 14.0})
    assert c.mean == 12.0 and c.sd == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / 2)
    assert Cell({0: 5.0}).sd is None and Cell({}).mean is None
    assert fmt(c) == "12.0 ± 2.0" and fmt(Cell({0: 5.0})) == "5.0" and fmt(Cell({})) == "—"


def test_step_pairs_seeds_and_calls_small_differences_noise() -> None:
    prev = Cell({0: 10.0, 1: 12.0, 2: 14.0})  # sd 2
    # +1 on every seed: paired Δ 1 ≤ spread 2 → within noise, whatever the report says
    s = step(prev, Cell({0: 11.0, 1: 13.0, 2: 15.0}), 39.1, 39.8)
    assert s.delta == pytest.approx(1.0) and s.noise == pytest.approx(2.0)
    assert s.verdict == "within noise" and s.agreement == "within noise"
    assert s.report_delta == pytest.approx(0.7)
    # +5 on every seed: real, and the report's direction
    s = step(prev, Cell({0: 15.0, 1: 17.0, 2: 19.0}), 39.1, 39.8)
    assert (s.verdict, s.agreement) == ("higher", "agrees")
    s = step(prev, Cell({0: 15.0, 1: 17.0, 2: 19.0}), 39.8, 39.1)
    assert (s.verdict, s.agreement) == ("higher", "disagrees")
    s = step(prev, Cell({0: 5.0, 1: 7.0, 2: 9.0}), 39.8, 39.1)
    assert (s.verdict, s.agreement) == ("lower", "agrees")
    # the larger spread counts: this row's sd 6 swallows a Δ of 5
    s = step(prev, Cell({0: 9.0, 1: 17.0, 2: 21.0}), None, None)
    assert s.noise == pytest.approx(6.110100926607787) and s.verdict == "within noise"


def test_step_uses_common_seeds_only_and_needs_two_for_a_verdict() -> None:
    prev = Cell({0: 10.0, 1: 20.0, 2: 30.0})
    s = step(prev, Cell({1: 25.0, 2: 31.0}), None, None)  # seed 0 failed in this row
    assert s.seeds == 2 and s.delta == pytest.approx(3.0)  # (5 + 1) / 2, not 28 - 20
    s = step(Cell({0: 10.0}), Cell({0: 50.0}), 1.0, 2.0)
    assert s.verdict == "no noise estimate" and s.agreement == "—" and s.delta == 40.0
    assert step(Cell({0: 1.0}), Cell({1: 2.0}), None, None).verdict == "—"


# --------------------------------------------------------------------------- tables
def test_the_report_tables_load_and_share_runs_only_between_equal_configs() -> None:
    assert table_names() == ["figure1", "table1", "table2", "table3", "table4", "table5"]
    seen: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for name in table_names():
        t = load_table(name)
        for row in [*t.rows, *([t.model] if t.model else [])]:
            if t.model is not None and row is not t.model:
                continue  # prediction rows are runs of their own
            key = (row.config.resolve(), row.overrides)
            assert seen.setdefault(row.name, key) == key, f"{name}: {row.name}"
    t4, t5 = load_table("table4"), load_table("table5")
    assert t4.model.name == t5.model.name == "mask_scoring" and t4.kind == "predict"
    assert [r.report[0] for r in t5.rows] == [44.1, 44.9, 45.2, 45.3]  # the report's Table 5
    assert load_table("table1").rows[-1].report == (43.1, 34.3, 43.1, 47.0)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("metrics: [segm.AP]\nrows: [{name: a, config: X}]\ncolour: red\n", r"colour: unknown key"),
        ("rows: [{name: a, config: X}]\n", r"metrics: need a list"),
        ("metrics: [segm.AP]\nrows: [{name: a, config: X}, {name: a, config: X}]\n", r"twice"),
        ("metrics: [segm.AP]\nrows: [{name: a, config: X, report: [1, 2]}]\n", r"need 1 numbers"),
        ("metrics: [segm.AP]\nrows: [{name: 'a/b', config: X}]\n", r"rows\[0\]\.name"),
        ("metrics: [segm.AP]\nrows: [{name: a, config: nope.yaml}]\n", r"nope\.yaml: no such"),
        ("metrics: [segm.AP]\nrows: [{name: a}]\n", r"rows\[0\]\.config: no config"),
        ("metrics: [AP]\nrows: [{name: a, config: X}]\n", r"metrics: need a list of keys"),
        (
            "kind: predict\nmodel: {name: m, config: X}\nmetrics: [segm.AP]\n"
            "rows: [{name: a, config: X}]\n",
            r"rows\[0\]\.config: a predict table's rows use its model",
        ),
    ],
)
def test_bad_table_files_name_the_file_and_field(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("X", str(TINY)))
    with pytest.raises(ConfigError, match=r"mine\.yaml: .*" + error):
        load_table(str(path))


def test_the_example_table_plans_against_the_report_rows(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "cbnet_lr.yaml"
    runs = plan(load_table(str(example)), tmp_path, load_scale("tiny"), 1)
    (table1_mosaic,) = plan(load_table("table1"), tmp_path, load_scale("tiny"), 1, ["mosaic"])
    assert runs[0].cfg == table1_mosaic.cfg  # the same run as Table 1's row: reused
    assert runs[1].cfg.train.lr == 4e-4 and runs[1].cfg.model.backbone.composite


def test_unknown_table_and_row_are_named() -> None:
    with pytest.raises(ConfigError, match=r"table9: no such table \(tables: figure1, table1"):
        load_table("table9")
    with pytest.raises(ConfigError, match=r"table1\.yaml: rows: no row 'cbnet' \(rows: weak_"):
        plan(load_table("table1"), Path("x"), load_scale("tiny"), 1, ["cbnet"])


# --------------------------------------------------------------------------- planning
def test_plan_runs_seed_by_seed_and_models_before_their_predictions(tmp_path: Path) -> None:
    runs = plan(load_table("table5"), tmp_path, load_scale("tiny"), 2)
    assert [(r.kind, r.row, r.seed) for r in runs[:6]] == [
        ("train", "mask_scoring", 0),
        ("predict", "dets300", 0),
        ("predict", "dets500", 0),
        ("predict", "dets800", 0),
        ("predict", "dets1000", 0),
        ("train", "mask_scoring", 1),
    ]
    assert runs[1].model is runs[0] and runs[1].run_dir == tmp_path / "dets300" / "seed0"
    assert [r.cfg.infer.max_per_img for r in runs[1:5]] == [300, 500, 800, 1000]
    assert runs[0].cfg.train.seed == 0 and runs[5].cfg.train.seed == 1
    assert runs[1].cfg.model == runs[0].cfg.model  # a prediction row trains nothing new


def test_a_prediction_row_may_not_change_the_model(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        f"kind: predict\nmodel: {{name: m, config: {FUXI / 'final.yaml'}}}\nmetrics: [segm.AP]\n"
        "rows: [{name: a, overrides: [model.roi.mask_scoring=false]}]\n"
    )
    with pytest.raises(ConfigError, match=r"t\.yaml: a: overrides: model\.roi\.mask_scoring: a"):
        plan(load_table(str(path)), tmp_path, load_scale("tiny"), 1)


def test_a_row_change_the_scale_would_overwrite_is_refused(tmp_path: Path) -> None:
    deeper = tmp_path / "deeper.yaml"
    deeper.write_text(
        f"base: {FUXI / 'table1' / 'row1_weak_baseline.yaml'}\n"
        "model:\n  backbone:\n    depth: 101\n"
    )
    path = tmp_path / "t.yaml"
    weak = FUXI / "table1" / "row1_weak_baseline.yaml"
    path.write_text(
        f"metrics: [segm.AP]\nrows:\n  - {{name: a, config: {weak}}}\n"
        f"  - {{name: b, config: {deeper}}}\n"
    )
    table = load_table(str(path))
    with pytest.raises(ConfigError, match=r"deeper\.yaml: model\.backbone\.depth: row 'b' changes"):
        plan(table, tmp_path, load_scale("tiny"), 1)
    assert len(plan(table, tmp_path, load_scale("full"), 1)) == 2  # full sets nothing outright


def test_a_study_folder_keeps_its_scale_and_its_runs_configs(tmp_path: Path) -> None:
    claim_study(tmp_path, load_scale("tiny"))
    claim_study(tmp_path, load_scale("tiny"))  # the same scale again: fine
    with pytest.raises(RunDirError, match=r"study\.json: scale: .* 'tiny', not 'small'"):
        claim_study(tmp_path, load_scale("small"))
    (a,) = plan(load_table("table1"), tmp_path, load_scale("tiny"), 1, ["mosaic"])
    (b,) = plan(load_table("table1"), tmp_path, load_scale("tiny"), 1, ["copy_paste"])
    a.run_dir.mkdir(parents=True)
    (a.run_dir / "config.yaml").write_text(dump(b.cfg))  # another row's run in this folder
    with pytest.raises(ConfigError, match=r"mosaic/seed0/config\.yaml: data\.augment\.mosaic_"):
        check_existing(a)
    (a.run_dir / "config.yaml").write_text(dump(a.cfg))
    check_existing(a)


# --------------------------------------------------------------------------- the written table
def test_the_table_reports_failed_runs_and_the_verdicts(tmp_path: Path) -> None:
    table = load_table("table2")
    runs = plan(table, tmp_path, load_scale("tiny"), 3)
    values = {
        ("weak_baseline", 0): 10.0,
        ("weak_baseline", 1): 11.0,
        ("weak_baseline", 2): 12.0,
        ("weak_refinemask", 0): 14.0,
        ("weak_refinemask", 1): 15.5,
    }
    for r in runs:
        if (r.row, r.seed) in values:
            v = values[(r.row, r.seed)] / 100
            r.status, r.metrics = "done", {"segm": {"AP": v, "APr": -1.0, "APc": v, "APf": v}}
        else:
            r.status, r.metrics = "failed", {}
    summary = report.write(tmp_path, table, runs, "tiny")
    on_disk = json.loads((tmp_path / "table2.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    ap = on_disk["rows"][1]["metrics"]["segm.AP"]
    assert ap["mean"] == pytest.approx(14.75) and ap["delta"] == pytest.approx(
        4.25
    )  # (4 + 4.5) / 2
    assert ap["verdict"] == "higher" and ap["agreement"] == "agrees"  # report: 39.1 → 40.2
    assert on_disk["rows"][0]["metrics"]["segm.APr"]["mean"] is None  # -1: no rare objects
    md = (tmp_path / "table2.md").read_text()
    assert "| + RefineMask<br>seed 2 failed (?): no log |" in md and "14.8 ± 1.1 (40.2)" in md
    assert "higher, agrees with the report" in md
    assert (tmp_path / "table2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- end to end
SMALL_RUN = [
    "model.num_classes=8",
    "data.synth.num_classes=8",
    "data.synth.train_images=12",
    "data.synth.val_images=3",
    "data.synth.min_side=96",
    "data.synth.max_side=128",
    "data.synth.max_objects=4",
    "data.augment.scale_range=[96,128]",
    "data.augment.max_size=160",
    "infer.short_side=112",
    "infer.max_size=160",
    "train.epochs=1",
    "train.max_iters_per_epoch=2",
    "model.rpn.test_proposals=50",
    "infer.max_per_img=20",
    "eval.challenge=false",
]


@pytest.mark.slow
def test_ablate_runs_a_users_table_reports_a_crash_and_reuses_finished_runs(
    tmp_path: Path, capsys
) -> None:
    from tailseg.cli.main import main

    table = tmp_path / "mine.yaml"
    table.write_text(
        f"title: EMA or not\nconfig: {TINY}\nmetrics: [segm.AP, segm.AP50]\nrows:\n"
        "  - {name: ema, label: with EMA}\n"
        "  - {name: no_ema, label: without, overrides: [train.ema=false]}\n"
        "  - {name: broken, overrides: [model.num_classes=9]}\n"  # fails when it starts
    )
    out = tmp_path / "study"
    args = ["ablate", str(table), "--out", str(out), "--scale", "full", "--seeds", "2", *SMALL_RUN]
    assert main(args) == 3  # a row failed; the study went on
    printed = capsys.readouterr().out
    assert "[1/6] started train ema seed 0" in printed and "FAILED broken seed 0" in printed
    summary = json.loads((out / "mine.json").read_text())
    ema, no_ema, broken = summary["rows"]
    assert [r["status"] for r in ema["runs"].values()] == ["done", "done"]
    assert (
        len(no_ema["metrics"]["segm.AP"]["seeds"]) == 2
        and no_ema["metrics"]["segm.AP"]["sd"] is not None
    )
    assert broken["runs"]["0"]["status"] == "failed"
    log = Path(broken["runs"]["0"]["log"])
    assert "model.num_classes: 9" in log.read_text()
    assert f"seed 0 failed (exit status 2): {log}" in (out / "mine.md").read_text()
    for seed in (0, 1):
        cfg = (out / "no_ema" / f"seed{seed}" / "config.yaml").read_text()
        assert f"seed: {seed}" in cfg and "ema: false" in cfg
    # again: the finished runs are reused, only the failed row runs
    assert main(args) == 3
    printed = capsys.readouterr().out
    assert "4 of 6 runs already finished; 2 to run" in printed
    # another scale in the same folder is refused before anything runs
    assert main([*args[:5], "tiny", *args[6:]]) == 2
    assert "study.json: scale:" in capsys.readouterr().err


def test_a_row_whose_config_fails_to_load_is_named_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad_row.yaml"
    bad.write_text(f"base: {TINY}\ntrain:\n  epochz: 3\n")
    path = tmp_path / "t.yaml"
    path.write_text(
        f"metrics: [segm.AP]\nrows: [{{name: a, config: {TINY}}}, {{name: b, config: {bad}}}]\n"
    )
    with pytest.raises(ConfigError, match=r"bad_row\.yaml: train\.epochz: unknown key"):
        plan(load_table(str(path)), tmp_path / "study", load_scale("full"), 1)
    assert not (tmp_path / "study").exists()
