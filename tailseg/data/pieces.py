"""Large annotation files in pieces: the annotations array parsed a few thousand at a time, and
their polygons checked a piece at a time with NumPy instead of part by part.

Parsing LVIS v1 train (1.1 GB, 1.27 M instances, ~90 M polygon coordinates) whole builds ~7 GB
of Python objects before the first check; in pieces, what is kept is the raw bytes and each
polygon part as one float64 array. Both shortcuts only ever say "certainly fine": anything else
(a structure the scanner cannot follow, a piece orjson rejects, a polygon that is not plainly
valid) goes to the ordinary path, whose checks and messages are the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from tailseg.data import json_scan
from tailseg.structures.masks import MAX_OUTLINE

PIECE = 4096  # annotations per piece: ~3.5 MB of LVIS json


class Fallback(Exception):
    """The file is not plainly readable in pieces: parse it whole, the ordinary way."""


@dataclass
class Piece:
    """Consecutive raw annotations: `anns[k]` parsed (its polygons possibly cut out of the text,
    then `anns[k]["segmentation"]` is a placeholder 0), `clean[k]` its polygon parts if they
    plainly pass the checks (else None), `original(k)` the annotation exactly as in the file."""

    anns: list[Any]
    clean: list[list[np.ndarray] | None]
    original: Callable[[int], Any]


def whole(raw_anns: list[Any], sizes: dict[int, tuple[int, int]]) -> Piece:
    """An already parsed annotations list as one piece."""
    return Piece(raw_anns, plainly_valid_polygons(raw_anns, sizes), raw_anns.__getitem__)


def split_top_level(
    raw: bytes,
) -> tuple[dict[str, Any], Callable[[dict[int, tuple[int, int]]], Iterator[Piece]] | None]:
    """(every top-level member but "annotations", parsed; a function of the image sizes that
    yields the annotations array in pieces, or None if the file has none). Raises Fallback when
    unsure; so may the pieces."""
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
    if span is None:
        return rest, None
    return rest, lambda sizes: _pieces(raw, buf, span, sizes)


def _pieces(
    raw: bytes, buf: np.ndarray, span: tuple[int, int], sizes: dict[int, tuple[int, int]]
) -> Iterator[Piece]:
    try:
        for starts, ends, _ in json_scan.members(buf, *span, batch=PIECE):
            text, coords, lens, parts_of = json_scan.extract_polygons(buf, starts, ends)
            try:
                anns = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise Fallback from None

            def original(k: int, starts: np.ndarray = starts, ends: np.ndarray = ends) -> Any:
                return orjson.loads(raw[int(starts[k]) : int(ends[k])])

            clean = _clean_cut_out(anns, parts_of, coords, lens, sizes)
            left = [k for k, n in enumerate(parts_of.tolist()) if n < 0]  # still in the text
            rest = plainly_valid_polygons([anns[k] for k in left], sizes)
            for k, parts in zip(left, rest, strict=True):
                clean[k] = parts
            yield Piece(anns, clean, original)
    except json_scan.Unreadable:
        raise Fallback from None


def _clean_cut_out(
    anns: list[Any],
    parts_of: np.ndarray,
    coords: np.ndarray,
    lens: np.ndarray,
    sizes: dict[int, tuple[int, int]],
) -> list[list[np.ndarray] | None]:
    """Polygon parts of the annotations whose polygons were cut out of the text, where they
    plainly pass the checks (the others — and any whose image is unknown — get None)."""
    clean: list[list[np.ndarray] | None] = [None] * len(anns)
    cut = np.flatnonzero(parts_of > 0)
    if len(cut) == 0:
        return clean
    per = parts_of[cut]
    hw = np.zeros((len(cut), 2), dtype=np.float64)
    known = np.zeros(len(cut), dtype=bool)
    for j, k in enumerate(cut.tolist()):
        a = anns[k]
        iid = a.get("image_id") if type(a) is dict else None
        if type(iid) is int and iid in sizes:
            hw[j] = sizes[iid]
            known[j] = True
    h, w = np.repeat(hw[:, 0], per), np.repeat(hw[:, 1], per)
    _keep_plain(clean, cut.tolist(), per, coords, lens, h, w, known)
    return clean


def _keep_plain(
    out: list[list[np.ndarray] | None],
    where: list[int],
    per: np.ndarray,
    coords: np.ndarray,
    lens: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    known: np.ndarray | None = None,
) -> None:
    """out[where[j]] = annotation j's parts (views into coords) if all `per[j]` of them are
    plainly valid (`_parts_ok`) and `known[j]`; the others stay None."""
    ok = _parts_ok(coords, lens, h, w)
    part_of = np.concatenate([[0], np.cumsum(per)])
    bad = np.concatenate([[0], np.cumsum(~ok)])
    good = bad[part_of[1:]] == bad[part_of[:-1]]
    if known is not None:
        good &= known
    parts = np.split(coords, np.cumsum(lens)[:-1])
    for k, g, a, b in zip(
        where, good.tolist(), part_of[:-1].tolist(), part_of[1:].tolist(), strict=True
    ):
        if g:
            out[k] = parts[a:b]


def _parts_ok(coords: np.ndarray, lens: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per polygon part (coords concatenated, lens (P,), its image's h and w (P,)): whether it
    certainly passes `clean_polygons` unchanged — even length, at least 3 points, finite, not
    far outside the image, an outline clearly shorter than MAX_OUTLINE."""
    ok = (lens >= 6) & (lens % 2 == 0)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    is_x = ((np.arange(len(coords)) - np.repeat(starts, lens)) & 1) == 0
    limit = np.where(is_x, np.repeat(w, lens), np.repeat(h, lens))
    bad = ~np.isfinite(coords) | (coords < -limit) | (coords > 2 * limit)
    bad_count = np.concatenate([[0], np.cumsum(bad)])
    ok &= bad_count[starts + lens] == bad_count[starts]
    if not ok.any():
        return ok
    # outline: Σ over vertices of max(|Δx|, |Δy|) to the next vertex, the last to the first;
    # computed over the parts that are ok so far (even lengths: x, y alternate in them)
    sel = np.repeat(ok, lens)
    x, y = coords[sel][0::2], coords[sel][1::2]
    vlen = lens[ok] // 2
    vstart = np.concatenate([[0], np.cumsum(vlen)[:-1]]).astype(np.int64)
    nxt = np.arange(1, len(x) + 1)
    nxt[vstart + vlen - 1] = vstart
    steps = np.maximum(np.abs(x[nxt] - x), np.abs(y[nxt] - y))
    outline = np.concatenate([[0.0], np.cumsum(steps)])
    length = outline[vstart + vlen] - outline[vstart]
    ok[ok] = length < MAX_OUTLINE * (1 - 1e-9)  # at the limit, the exact check decides
    return ok


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
        if all(type(p) is list for p in segm):
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
    per = np.array([len(segm) for _, segm, _, _ in cand])
    h = np.repeat(np.array([c[2] for c in cand], dtype=np.float64), per)
    w = np.repeat(np.array([c[3] for c in cand], dtype=np.float64), per)
    _keep_plain(out, [c[0] for c in cand], per, coords, lens, h, w)
    return out
