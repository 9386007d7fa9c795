"""Reading json files (optionally gzipped) with orjson; errors name the file and the position."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson

from tailseg.errors import DataError


def read_json(path: str | Path) -> Any:
    """Parse a (optionally .gz) json file with orjson; errors name the file and the position.

    NaN and Infinity (which Python's json module writes and orjson refuses) are read as floats,
    so that the caller's checks can name the field that holds them.
    """
    return parse_json(read_bytes(path), Path(path))


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a (optionally .gz) file; a missing or unreadable one is a DataError."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def parse_json(raw: bytes, path: Path) -> Any:
    """`read_json`'s parse of bytes already read."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        data = _with_non_finite(raw)
        if data is None:
            raise DataError(
                f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
            ) from None
        return data


def _with_non_finite(raw: bytes) -> Any | None:
    """The stdlib parse of `raw` if it holds NaN / Infinity constants, else None."""
    seen: list[str] = []

    def constant(name: str) -> float:
        seen.append(name)
        return float(name)

    try:
        data = json.loads(raw, parse_constant=constant)
    except (ValueError, RecursionError):
        return None
    return data if seen else None
