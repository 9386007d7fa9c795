"""Large annotation files in pieces: the annotations array parsed a few thousand at a time, and
their polygons checked a piece at a time with NumPy instead of part by part.

Parsing LVIS v1 train (1.1 GB, 1.27 M instances, ~90 M polygon coordinates) whole builds ~7 GB
of Python objects before the first check; in pieces, what is kept is the raw bytes and each
polygon part as one float64 array. Both shortcuts only ever say "certainly fine": anything else
(a structure the scanner cannot follow, a piece orjson rejects, a polygon that is not plainly
valid) goes to the ordinary path, whose checks and messages are the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np
import orjson

from tailseg.data import json_scan
from tailseg.structures.masks import MAX_OUTLINE

PIECE = 4096  # annotations per piece: ~3.5 MB of LVIS json


class Fallback(Exception):
    """The file is not plainly readable in pieces: parse it whole, the ordinary way."""


def split_top_level(raw: bytes) -> tuple[dict[str, Any], Iterator[list[Any]] | None]:
    """(every top-level member but "annotations", parsed; the annotations array as an iterator
    of parsed pieces, or None if the file has none). Raises Fallback when unsure; the pieces
    iterator may raise it too."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    top = json_scan.container(buf, 0, len(buf), ord("{"))
    if top is None:
        raise Fallback
    try:
        found = list(json_scan.members(buf, *top, batch=64))
    except json_scan.Unreadable:
        raise Fallback from None
    rest: dict[str, Any] = {}
    span = None
    for starts, ends, colons in found:
        for s, e, c in zip(starts.tolist(), ends.tolist(), colons.tolist(), strict=True):
            try:
                key = orjson.loads(raw[s:c]) if c > s else None
                if not isinstance(key, str) or key in rest or (key == "annotations" and span):
                    raise Fallback
                if key == "annotations":
                    span = json_scan.container(buf, c + 1, e, ord("["))
                    if span is None:  # null, or not an array: the ordinary path says what
                        raise Fallback
                else:
                    rest[key] = orjson.loads(raw[c + 1 : e])
            except orjson.JSONDecodeError:
                raise Fallback from None
    return rest, (_pieces(raw, buf, span) if span else None)


def _pieces(raw: bytes, buf: np.ndarray, span: tuple[int, int]) -> Iterator[list[Any]]:
    view = memoryview(raw)
    try:
        for starts, ends, _ in json_scan.members(buf, *span, batch=PIECE):
            text = b"".join((b"[", view[int(starts[0]) : int(ends[-1])], b"]"))
            try:
                yield orjson.loads(text)
            except orjson.JSONDecodeError:
                raise Fallback from None
    except json_scan.Unreadable:
        raise Fallback from None


def plainly_valid_polygons(
    raw_anns: list[Any], sizes: dict[int, tuple[int, int]]
) -> list[list[np.ndarray] | None]:
    """For each raw annotation, its polygon parts as float64 arrays if they certainly pass
    `masks.clean_polygons` unchanged (flat lists of ints and floats, even length, at least 3
    points, finite, not far outside the image, outline short enough), else None.

    sizes: image id → (height, width). One NumPy pass over the piece's coordinates.
    """
    out: list[list[np.ndarray] | None] = [None] * len(raw_anns)
    cand: list[tuple[int, list, int, int]] = []
    for k, a in enumerate(raw_anns):
        if type(a) is not dict:
            continue
        segm, iid = a.get("segmentation"), a.get("image_id")
        if type(segm) is not list or not segm or type(iid) is not int or iid not in sizes:
            continue
        if all(type(p) is list and len(p) >= 6 and not len(p) % 2 for p in segm):
            h, w = sizes[iid]
            cand.append((k, segm, h, w))
    if not cand:
        return out
    lens = np.array([len(p) for _, segm, _, _ in cand for p in segm], dtype=np.int64)
    kinds = set(map(type, chain.from_iterable(p for _, segm, _, _ in cand for p in segm)))
    if not kinds <= {float, int}:  # a bool, a string, a list...: part by part, with messages
        return out
    try:
        coords = np.fromiter(
            chain.from_iterable(p for _, segm, _, _ in cand for p in segm),
            dtype=np.float64,
            count=int(lens.sum()),
        )
    except OverflowError:  # an integer beyond float range
        return out
    parts_per = np.array([len(segm) for _, segm, _, _ in cand])
    h = np.repeat(np.array([c[2] for c in cand], dtype=np.float64), parts_per)  # per part
    w = np.repeat(np.array([c[3] for c in cand], dtype=np.float64), parts_per)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    is_x = ((np.arange(len(coords)) - np.repeat(starts, lens)) & 1) == 0
    limit = np.where(is_x, np.repeat(w, lens), np.repeat(h, lens))
    bad = ~np.isfinite(coords) | (coords < -limit) | (coords > 2 * limit)
    bad_count = np.concatenate([[0], np.cumsum(bad)])
    ok = bad_count[starts + lens] == bad_count[starts]
    # outline: Σ over vertices of max(|Δx|, |Δy|) to the next vertex, the last to the first
    x, y = coords[0::2], coords[1::2]
    vstart, vlen = starts // 2, lens // 2
    nxt = np.arange(1, len(x) + 1)
    nxt[vstart + vlen - 1] = vstart
    with np.errstate(invalid="ignore"):  # non-finite parts are already not ok
        steps = np.maximum(np.abs(x[nxt] - x), np.abs(y[nxt] - y))
    outline = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(steps), steps, 0.0))])
    length = outline[vstart + vlen] - outline[vstart]
    ok &= length < MAX_OUTLINE * (1 - 1e-9)  # at the limit, the exact check decides
    part_of = np.concatenate([[0], np.cumsum(parts_per)])  # annotation j: parts [a_j, a_j+1)
    bad_parts = np.concatenate([[0], np.cumsum(~ok)])
    ann_ok = (bad_parts[part_of[1:]] == bad_parts[part_of[:-1]]).tolist()
    parts = np.split(coords, starts[1:])
    for (k, _, _, _), good, a, b in zip(
        cand, ann_ok, part_of[:-1].tolist(), part_of[1:].tolist(), strict=True
    ):
        if good:
            out[k] = parts[a:b]
    return out
