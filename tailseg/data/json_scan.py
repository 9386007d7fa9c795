"""Where the members of a JSON object or array begin and end, found without parsing them.

`AnnotationFile.load` parses LVIS's 1.1 GB json a few thousand annotations at a time instead
of building the whole document as Python objects (which takes ~7 GB): this scanner finds the
top-level members and the annotations array's elements in the raw bytes. It does not validate
JSON — each piece is then parsed by orjson, which does — and reports any structure it cannot
follow (unbalanced brackets, an unterminated string, an empty member) as -1, upon which the
caller parses the whole file the ordinary way, with its exact error messages.

`extract_polygons` also cuts plainly written polygon lists out of a piece's text and parses
their numbers itself: orjson then has no float lists to turn into Python objects, which is
most of LVIS's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numba import njit

_QUOTE, _BACKSLASH, _COMMA, _COLON = 34, 92, 44, 58


@njit(cache=True)
def _walk(buf, i, end, starts, ends, colons):
    """Members of the container whose closing bracket is buf[end - 1], from byte i on (just past
    its opening bracket or a member's comma): each one's first and one-past-last non-blank byte
    and, for objects, its first top-level colon (-1 if none). Stops when the arrays are full.
    Returns (members found or -1 if unreadable, where to go on: end - 1 once all are found)."""
    depth = 0
    n = 0
    in_string = False
    first = -1
    last = -1
    colon = -1
    resumed = i
    while i < end - 1:
        c = buf[i]
        if in_string:
            if c == _BACKSLASH:
                i += 2
                continue
            if c == _QUOTE:
                in_string = False
                last = i
            i += 1
            continue
        if c == 32 or c == 9 or c == 10 or c == 13:
            i += 1
            continue
        if depth == 0 and c == _COMMA:
            if first < 0:
                return -1, i
            starts[n], ends[n], colons[n] = first, last + 1, colon
            n += 1
            first, colon = -1, -1
            i += 1
            if n == len(starts):
                return n, i
            continue
        if c == _QUOTE:
            in_string = True
        elif c == 123 or c == 91:  # { [
            depth += 1
        elif c == 125 or c == 93:  # } ]
            depth -= 1
            if depth < 0:
                return -1, i
        elif depth == 0 and c == _COLON and colon < 0:
            colon = i
        if first < 0:
            first = i
        last = i
        i += 1
    if in_string or depth != 0 or i != end - 1:
        return -1, i
    if first >= 0:
        starts[n], ends[n], colons[n] = first, last + 1, colon
        n += 1
    elif n > 0 or buf[resumed - 1] == _COMMA:  # a trailing comma
        return -1, i
    return n, i


def members(
    buf: np.ndarray, start: int, end: int, batch: int = 4096
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(starts, ends, colons) of the members of buf[start:end], `batch` members at a time, in
    one pass; raises Unreadable where it cannot follow the structure.

    buf: (N,) uint8 · start, end: the container's opening bracket and one past its closing one.
    """
    if end - start < 2:
        raise Unreadable(start)
    i = start + 1
    while i < end - 1:
        starts, ends, colons = (np.empty(batch, dtype=np.int64) for _ in range(3))
        n, i = _walk(buf, i, end, starts, ends, colons)
        if n < 0:
            raise Unreadable(i)
        if n:
            yield starts[:n], ends[:n], colons[:n]
    if buf[i - 1] == _COMMA:  # a full batch ended on a comma just before the closing bracket
        raise Unreadable(i)


class Unreadable(ValueError):
    """The scanner cannot follow the JSON structure at this byte (orjson will say why)."""


def container(buf: np.ndarray, start: int, end: int, opening: int) -> tuple[int, int] | None:
    """buf[start:end] without surrounding blanks, if it is one container opened by `opening`
    (ord "{" or "["): (its first byte, one past its last), else None."""
    first, last = _trim(buf, start, end)
    closing = opening + 2  # "{" → "}", "[" → "]"
    if first > last or buf[first] != opening or buf[last] != closing:
        return None
    return first, last + 1


@njit(cache=True)
def _trim(buf, start, end):
    """First and last non-blank byte of buf[start:end] (first > last if all blank)."""
    first, last = start, end - 1
    while first <= last and (buf[first] in (32, 9, 10, 13)):
        first += 1
    while last >= first and (buf[last] in (32, 9, 10, 13)):
        last -= 1
    return first, last


# --------------------------------------------------------------------------- polygon numbers
_KEY = np.frombuffer(b'"segmentation"', dtype=np.uint8)
_MAX_DIGITS = 15  # m < 10**15 < 2**53 and 10**k exact: m / 10**k is then correctly rounded


@njit(cache=True)
def _skip_blanks(buf, i, end):
    while i < end and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
        i += 1
    return i


@njit(cache=True)
def _number(buf, i, end, coords, n):
    """Parse a plain decimal (-?digits(.digits)?, at most 15 significant digits) at buf[i] into
    coords[n]; returns one past it, or -1 for anything else (exponents, long mantissas, ...)."""
    if i >= end:
        return -1
    negative = buf[i] == 45  # -
    if negative:
        i += 1
    m = 0
    digits = 0
    scale = 0
    start = i
    while i < end and 48 <= buf[i] <= 57:
        m = m * 10 + (buf[i] - 48)
        digits += 1 if m else 0
        i += 1
    if i == start or (buf[start] == 48 and i - start > 1):  # no digits, or a leading zero
        return -1
    fraction = False
    if i < end and buf[i] == 46:  # .
        fraction = True
        i += 1
        first = i
        while i < end and 48 <= buf[i] <= 57:
            m = m * 10 + (buf[i] - 48)
            digits += 1 if m else 0
            scale += 1
            i += 1
        if i == first:
            return -1
    if digits > _MAX_DIGITS or scale > _MAX_DIGITS:
        return -1
    if i < end and (buf[i] == 101 or buf[i] == 69):  # e E
        return -1
    value = m / 10.0**scale
    if negative and (fraction or m != 0):  # JSON's -0 is the integer 0, -0.0 a negative zero
        value = -value
    coords[n] = value
    return i


@njit(cache=True)
def _polygon_list(buf, i, end, coords, n, lens, p):
    """Parse `[[x, y, ...], ...]` (at least one part, each of plain decimals) at buf[i]: fills
    coords from n and lens from p; returns (one past it, coords, parts) or (-1, 0, 0)."""
    if i >= end or buf[i] != 91:
        return -1, 0, 0
    i = _skip_blanks(buf, i + 1, end)
    parts = 0
    count = 0
    while True:
        if i >= end or buf[i] != 91:
            return -1, 0, 0
        i = _skip_blanks(buf, i + 1, end)
        length = 0
        if i < end and buf[i] == 93:  # an empty part
            i += 1
        else:
            while True:
                i = _number(buf, i, end, coords, n + count)
                if i < 0:
                    return -1, 0, 0
                count += 1
                length += 1
                i = _skip_blanks(buf, i, end)
                if i < end and buf[i] == 44:
                    i = _skip_blanks(buf, i + 1, end)
                    continue
                if i < end and buf[i] == 93:
                    i += 1
                    break
                return -1, 0, 0
        lens[p + parts] = length
        parts += 1
        i = _skip_blanks(buf, i, end)
        if i < end and buf[i] == 44:
            i = _skip_blanks(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1, count, parts
        return -1, 0, 0


@njit(cache=True)
def _extract(buf, starts, ends, key, out, coords, lens, parts_of):
    """Copy the objects buf[starts[k]:ends[k]] into `out` as one json array, each one's
    "segmentation" value — when it is a list of polygons of plain decimals and the object has
    no other "segmentation" key — replaced by 0 and its numbers put in coords (parts' lengths in
    lens, the object's part count in parts_of[k]; -1 where left in the text).
    Returns (bytes of out used, coordinates, parts)."""
    o = 0
    n = 0
    p = 0
    out[o] = 91
    o += 1
    for k in range(len(starts)):
        s, e = starts[k], ends[k]
        if k:
            out[o] = 44
            o += 1
        parts_of[k] = -1
        cut_from, cut_to = -1, -1
        found = 0
        depth = 0
        i = s
        while i < e:
            c = buf[i]
            if c == 34:  # a string: a key of this object if it is followed by a colon
                j = i + 1
                escaped = False
                while j < e and buf[j] != 34:
                    escaped |= buf[j] == 92
                    j += 2 if buf[j] == 92 else 1
                if depth == 1 and escaped:  # a key written with escapes may be anything
                    colon = _skip_blanks(buf, j + 1, e)
                    if colon < e and buf[colon] == 58:
                        found += 2
                if depth == 1 and j - i + 1 == len(key):
                    same = True
                    for t in range(len(key)):
                        if buf[i + t] != key[t]:
                            same = False
                            break
                    colon = _skip_blanks(buf, j + 1, e)
                    if same and colon < e and buf[colon] == 58:
                        found += 1
                        v = _skip_blanks(buf, colon + 1, e)
                        stop, count, parts = _polygon_list(buf, v, e, coords, n, lens, p)
                        if stop > 0 and parts > 0:
                            cut_from, cut_to = v, stop
                            parts_of[k] = parts
                            n_next, p_next = n + count, p + parts
                i = j + 1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
            i += 1
        if found != 1 or cut_from < 0:
            parts_of[k] = -1
            out[o : o + e - s] = buf[s:e]
            o += e - s
            continue
        n, p = n_next, p_next
        out[o : o + cut_from - s] = buf[s:cut_from]
        o += cut_from - s
        out[o] = 48  # 0
        o += 1
        out[o : o + e - cut_to] = buf[cut_to:e]
        o += e - cut_to
    out[o] = 93
    o += 1
    return o, n, p


def extract_polygons(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """The objects buf[starts[k]:ends[k]] as one json array text whose plainly written polygon
    lists are cut out: (text, coordinates (N,) float64, part lengths (P,), parts per object (K,),
    -1 where the segmentation stayed in the text).

    A coordinate is parsed exactly as a json parser does (the correctly rounded double) when
    written as -?digits[.digits] with at most 15 significant digits; anything else leaves that
    object's segmentation in the text, for orjson."""
    size = int((ends - starts).sum()) + len(starts) + 2
    out = np.empty(size, dtype=np.uint8)
    coords = np.empty(size // 2 + 1, dtype=np.float64)  # each number and its comma: >= 2 bytes
    lens = np.empty(size // 2 + 1, dtype=np.int64)  # "[]," is 3 bytes, a number and "," 2
    parts_of = np.empty(len(starts), dtype=np.int64)
    used, n, p = _extract(buf, starts, ends, _KEY, out, coords, lens, parts_of)
    return out[:used].tobytes(), coords[:n].copy(), lens[:p].copy(), parts_of
