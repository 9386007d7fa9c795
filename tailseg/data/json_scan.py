"""Where the members of a JSON object or array begin and end, found without parsing them.

`AnnotationFile.load` parses LVIS's 1.1 GB json a few thousand annotations at a time instead
of building the whole document as Python objects (which takes ~7 GB): this scanner finds the
top-level members and the annotations array's elements in the raw bytes. It does not validate
JSON — each piece is then parsed by orjson, which does — and reports any structure it cannot
follow (unbalanced brackets, an unterminated string, an empty member) as -1, upon which the
caller parses the whole file the ordinary way, with its exact error messages.
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
