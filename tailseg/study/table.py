"""A study table: rows (configs, or dotted overrides of a base) and the report's numbers.

A table file (the report's are `tailseg/configs/fuxi2021/tables/*.yaml`)::

    title: "Table 1: ..."
    metrics: [segm.AP, segm.APr, segm.APc, segm.APf]   # the columns, keys of metrics.json
    config: base.yaml          # optional: every row's config unless the row names its own
    rows:
      - name: weak_baseline    # the run folder: DIR/<name>/seed<k>/ (rows of several tables
        label: RFS + SL        #   with one name share their runs)
        config: ../table1/row1_weak_baseline.yaml
        overrides: [model.roi.mask_scoring=true]   # optional, applied last, as on a command line
        report: [39.1, 27.9, 39.2, 43.7]           # optional: the report's numbers, one a metric

A prediction table also names `model: {name, config}`: its rows train nothing; each evaluates
that model's runs with its `overrides` (test-time settings). A `kind: curves` table draws the
per-epoch curves of its rows (the report's Figure 1). Paths are relative to the table file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tailseg.config.loader import _read_yaml, named_yaml, yaml_names
from tailseg.errors import ConfigError

TABLE_DIR = Path(__file__).resolve().parents[1] / "configs" / "fuxi2021" / "tables"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    config: Path
    overrides: tuple[str, ...] = ()
    report: tuple[float | None, ...] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    path: Path
    title: str
    metrics: tuple[str, ...]
    rows: tuple[Row, ...]
    kind: Literal["train", "predict", "curves"] = "train"
    model: Row | None = None  # predict tables: the trained model their rows evaluate

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.rows)
        raise ConfigError(f"{self.path}: rows: no row {name!r} (rows: {known})")


def table_names() -> list[str]:
    return yaml_names(TABLE_DIR)


def load_table(name: str) -> Table:
    """A report table by name (`table1`..`table5`, `figure1`) or a table file's path."""
    path = named_yaml(name, TABLE_DIR, "table", "; or a table file's path")
    raw = _read_yaml(path)
    known_keys = {"title", "metrics", "config", "rows", "kind", "model"}
    for key in raw:
        if key not in known_keys:
            raise ConfigError(
                f"{path}: {key}: unknown key (known: {', '.join(sorted(known_keys))})"
            )
    kind = raw.get("kind", "train")
    if kind not in ("train", "predict", "curves"):
        raise ConfigError(f"{path}: kind: must be train, predict or curves, got {kind!r}")
    metrics = raw.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(_is_metric(m) for m in metrics):
        raise ConfigError(f"{path}: metrics: need a list of keys such as segm.AP")
    base = _config_path(path, raw["config"], "config") if "config" in raw else None
    model = None
    if kind == "predict":
        spec = raw.get("model")
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: model: a predict table needs model: {{name, config}}")
        model = _row(path, "model", spec, base, len(metrics), with_report=False)
    elif "model" in raw:
        raise ConfigError(f"{path}: model: only a predict table has one")
    rows_raw = raw.get("rows")
    if not isinstance(rows_raw, list) or not rows_raw:
        raise ConfigError(f"{path}: rows: need a list of rows")
    rows = tuple(
        _row(path, f"rows[{i}]", r, None if model else base, len(metrics), model=model)
        for i, r in enumerate(rows_raw)
    )
    names = [r.name for r in rows] + ([model.name] if model else [])
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(f"{path}: rows: the name {n!r} is used twice")
    title = raw.get("title", path.stem)
    if not isinstance(title, str):
        raise ConfigError(f"{path}: title: must be a string")
    return Table(path.stem, path, title, tuple(metrics), rows, kind, model)


def _is_metric(m: Any) -> bool:
    return isinstance(m, str) and "." in m and all(m.split("."))


def _config_path(table: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{table}: {where}: must be a config file path")
    path = Path(value) if Path(value).is_absolute() else table.parent / value
    if not path.is_file():
        from tailseg.cli.common import CONFIG_DIR

        named = CONFIG_DIR / (value if value.endswith(".yaml") else f"{value}.yaml")
        if not named.is_file():
            raise ConfigError(f"{table}: {where}: {value}: no such config file")
        path = named
    return path


def _row(
    table: Path,
    where: str,
    spec: Any,
    base: Path | None,
    n_metrics: int,
    *,
    model: Row | None = None,
    with_report: bool = True,
) -> Row:
    if not isinstance(spec, dict):
        raise ConfigError(f"{table}: {where}: a row is a mapping (name, config, overrides, ...)")
    allowed = {"name", "label", "config", "overrides", "report"}
    for key in spec:
        if key not in allowed or (key == "report" and not with_report):
            raise ConfigError(f"{table}: {where}.{key}: unknown key")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{table}: {where}.name: need a folder name ([A-Za-z0-9_.-]), got {name!r}"
        )
    if model is not None:
        if "config" in spec:
            raise ConfigError(f"{table}: {where}.config: a predict table's rows use its model")
        config = model.config
    elif "config" in spec:
        config = _config_path(table, spec["config"], f"{where}.config")
    elif base is not None:
        config = base
    else:
        raise ConfigError(f"{table}: {where}.config: no config (and no table-level config:)")
    overrides = spec.get("overrides", [])
    if not isinstance(overrides, list) or not all(
        isinstance(o, str) and "=" in o for o in overrides
    ):
        raise ConfigError(f"{table}: {where}.overrides: need a list of key.sub=value strings")
    report = spec.get("report")
    if report is not None:
        ok = isinstance(report, list) and len(report) == n_metrics
        ok = ok and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in report
        )
        if not ok:
            raise ConfigError(
                f"{table}: {where}.report: need {n_metrics} numbers (or null), one per metric"
            )
        report = tuple(None if v is None else float(v) for v in report)
    label = spec.get("label", name)
    if not isinstance(label, str):
        raise ConfigError(f"{table}: {where}.label: must be a string")
    return Row(name, label, config, tuple(overrides), report)
