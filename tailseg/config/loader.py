"""YAML → frozen dataclasses, with one `base:` parent per file and dotted overrides.

Every value is checked against the dataclass field's type hint. Errors name the file (or
"command line") that set the offending key and the dotted key itself, e.g.::

    ConfigError: tailseg/configs/tiny.yaml: model.backbone.depht: unknown key (known: kind, ...)
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from tailseg.errors import ConfigError

T = TypeVar("T")
COMMAND_LINE = "command line"
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


MAX_NODES = 100_000  # a YAML document may expand (through aliases) to at most this many values
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TRUE, _YAML_FALSE = {"on", "yes", "true"}, {"off", "no", "false"}


# --------------------------------------------------------------------------- reading YAML
def _safe_load(text: str, source: str, prefix: str = "") -> Any:
    """`yaml.safe_load` that refuses duplicate keys, recursive aliases and alias bombs.

    ConfigError names `source` and the dotted key (after `prefix`); a YAML syntax error is
    raised as yaml.YAMLError, nesting too deep for the parser as ConfigError.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, prefix, source, set(), [MAX_NODES])
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(
            f"{source}: {prefix.rstrip('.') or '<root>'}: YAML nested too deeply"
        ) from None
    finally:
        loader.dispose()


def _check_nodes(
    node: yaml.Node, dotted: str, source: str, path: set[int], budget: list[int]
) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{source}: YAML expands to over {MAX_NODES:,} values (aliases?)")
    if id(node) in path:
        raise ConfigError(f"{source}: {dotted.rstrip('.') or '<root>'}: recursive YAML alias")
    path.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key_node.tag != _MERGE_TAG:
                if key in first_line:
                    lines = (
                        f" (lines {first_line[key]} and {line})" if line > first_line[key] else ""
                    )
                    raise ConfigError(f"{source}: {dotted}{key}: duplicate key{lines}")
                first_line[key] = line
            _check_nodes(value_node, f"{dotted}{key}.", source, path, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_nodes(item, f"{dotted.rstrip('.')}[{i}].", source, path, budget)
    path.discard(id(node))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except ValueError as e:  # e.g. a NUL character in a `base:` path
        raise ConfigError(f"{path}: cannot read config file ({e})") from None
    try:
        data = _safe_load(text, str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where} malformed YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(
    dst: dict[str, Any], src: dict[str, Any], origins: dict[str, str], source: str, prefix: str = ""
) -> None:
    """Deep-merge `src` into `dst`; record which source set every dotted key."""
    for key, value in src.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: {prefix}{key!r}: keys must be strings")
        dotted = prefix + key
        origins[dotted] = source
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origins, source, dotted + ".")
        else:
            dst[key] = _deepcopy(value)
            if isinstance(value, dict):
                _record(value, origins, source, dotted + ".")


def _record(d: dict[str, Any], origins: dict[str, str], source: str, prefix: str) -> None:
    for key, value in d.items():
        origins[prefix + str(key)] = source
        if isinstance(value, dict):
            _record(value, origins, source, prefix + str(key) + ".")


def _deepcopy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def yaml_names(folder: Path) -> list[str]:
    """The stems of the YAML files in `folder`, sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def named_yaml(name: str, folder: Path, what: str, hint: str = "") -> Path:
    """`name` as a path if it is a file, else `folder/<name>.yaml`; ConfigError listing the
    names in `folder` otherwise (`what`: "scale", "table", ...)."""
    path = Path(name)
    if path.is_file():
        return path
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(yaml_names(folder))
        raise ConfigError(f"{name}: no such {what} ({what}s: {known}{hint})")
    return path


def load_raw(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a config file and its `base:` chain. Returns (merged dict, dotted key → source)."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    path = Path(path)
    seen: set[Path] = set()
    while True:
        resolved = path.resolve()
        if resolved in seen:
            raise ConfigError(f"{path}: base: cycle through {resolved}")
        seen.add(resolved)
        data = _read_yaml(path)
        base = data.pop("base", None)
        chain.append((path, data))
        if base is None:
            break
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: must be one file path, got {type(base).__name__}")
        path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for file, data in reversed(chain):  # root ancestor first, the named file last
        _merge(merged, data, origins, str(file))
    return merged, origins


def apply_overrides(
    raw: dict[str, Any], origins: dict[str, str], overrides: typing.Sequence[str]
) -> None:
    """Apply `a.b.c=value` strings in place; values are parsed as YAML scalars or lists."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{COMMAND_LINE}: {item!r}: overrides look like key.sub=value")
        key, _, text = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{COMMAND_LINE}: {item!r}: empty key")
        try:
            value = _safe_load(text, COMMAND_LINE, key + ".") if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                origins[".".join(parts[: i + 1])] = COMMAND_LINE
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"{COMMAND_LINE}: {key}: {where} is not a section")
            node = child
        node[parts[-1]] = value
        origins[key] = COMMAND_LINE
        if isinstance(value, dict):
            _record(value, origins, COMMAND_LINE, key + ".")


# --------------------------------------------------------------------------- building dataclasses
def _origin(origins: dict[str, str], dotted: str, default: str) -> str:
    """The source that set `dotted` (`a.b[2].c` is set by whoever set `a.b`)."""
    key = dotted
    while key:
        if key in origins:
            return origins[key]
        key = key[: key.rindex("[")] if key.endswith("]") else key.rpartition(".")[0]
    return default


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, dotted: str, origins: dict[str, str], default_src: str) -> Any:
    def fail(msg: str) -> typing.NoReturn:
        raise ConfigError(f"{_origin(origins, dotted, default_src)}: {dotted}: {msg}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            fail(f"null is not allowed (expected {_type_name(tp)})")
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error is the useful one
            return _coerce(value, options[0], dotted, origins, default_src)
        for arg in options:
            try:
                return _coerce(value, arg, dotted, origins, default_src)
            except ConfigError:
                continue
        fail(f"{value!r} does not fit {_type_name(tp)}")
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        if isinstance(value, bool) and all(isinstance(a, str) for a in args):
            # YAML reads an unquoted on/off/yes/no/true/false as a bool: `train.amp=off`
            words = _YAML_TRUE if value else _YAML_FALSE
            meant = [a for a in args if a.lower() in words]
            if len(meant) == 1:
                return meant[0]
        fail(f"{value!r} is not one of {', '.join(repr(a) for a in args)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(f"expected a section (mapping) for {tp.__name__}, got {value!r}")
        return _build(tp, value, dotted + ".", origins, default_src)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            fail(f"expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                fail(f"expected {len(args)} items, got {len(value)}")
            items = [
                _coerce(v, a, f"{dotted}[{i}]", origins, default_src)
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [
                _coerce(v, item_tp, f"{dotted}[{i}]", origins, default_src)
                for i, v in enumerate(value)
            ]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            fail(f"expected a mapping, got {value!r}")
        key_tp, val_tp = args or (Any, Any)
        return {
            _coerce(k, key_tp, f"{dotted}.{k}", origins, default_src): _coerce(
                v, val_tp, f"{dotted}.{k}", origins, default_src
            )
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail(f"expected an integer, got {value!r}")
    if tp is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float range
                number = math.inf
        elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            number = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if number is None:
            fail(f"expected a number, got {value!r:.60}")
        if not math.isfinite(number):
            fail(f"expected a finite number, got {value!r:.60}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        fail(f"expected a string, got {value!r}")
    raise TypeError(f"config schema uses an unsupported type {tp!r} at {dotted}")


# keys that were renamed: what to write instead (named in the error, never silently mapped)
RENAMED = {
    "model.roi.mask_head": "renamed to model.roi.mask_heads, one per stage: e.g. [htc, htc, htc]",
}


def _build(cls: type[T], data: dict[str, Any], prefix: str, origins: dict[str, str], src: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            dotted = prefix + str(key)
            known = RENAMED.get(dotted) or f"known: {', '.join(fields)}"
            raise ConfigError(f"{_origin(origins, dotted, src)}: {dotted}: unknown key ({known})")
    kwargs = {
        name: _coerce(data[name], hints[name], prefix + name, origins, src)
        for name in fields
        if name in data
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        # __post_init__ checks raise "field: message" (or "field[i]: message"); name the file
        # that set that field.
        field, sep, msg = str(e).partition(": ")
        known = sep and field.partition("[")[0] in fields
        dotted = prefix + field if known else prefix.rstrip(".") or "<root>"
        text = msg if known else str(e)
        raise ConfigError(f"{_origin(origins, dotted, src)}: {dotted}: {text}") from None


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>") -> T:
    """Build a config dataclass from a plain dict, checking every key and type."""
    return _build(cls, data, "", {}, source)


def load(cls: type[T], path: str | Path, overrides: typing.Sequence[str] = ()) -> T:
    """Load `path` (with its `base:` chain), apply dotted overrides, and check the result."""
    raw, origins = load_raw(path)
    apply_overrides(raw, origins, overrides)
    return _build(cls, raw, "", origins, str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (lists for tuples) of a config dataclass, ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def dump(cfg: Any) -> str:
    """The resolved config as YAML; `load` of that text gives an equal object."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
