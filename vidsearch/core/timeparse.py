"""Recorded time: users' ISO 8601 times and files' ``creation_time`` tags as aware UTC, and which
frames of a file were recorded in a time window (pure)."""
from __future__ import annotations

import datetime as _dt

import numpy as np

from vidsearch.errors import UserError

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def parse_when(text: str | _dt.datetime | None) -> _dt.datetime | None:
    """A user's time (ISO 8601: ``2026-11-02``, ``2026-11-02 08:30``, ``...T08:30:00+01:00``) as aware UTC.

    A time without an offset is UTC, like the ``creation_time`` MP4/MOV files carry.
    """
    if text is None or text == "":
        return None
    if isinstance(text, _dt.datetime):
        t = text
    else:
        s = str(text).strip()
        try:
            t = _dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        except ValueError:
            raise UserError(f"cannot read the time {text!r}: use ISO 8601, e.g. 2026-11-02 or 2026-11-02T08:30:00Z") from None
    return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(_dt.timezone.utc)


def parse_creation_time(value: str | None) -> _dt.datetime | None:
    """A file's ``creation_time`` tag as aware UTC, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return parse_when(value)
    except UserError:
        return None


def recorded_mask(created: _dt.datetime | None, pts: np.ndarray, after: _dt.datetime | None,
                  before: _dt.datetime | None) -> np.ndarray | None:
    """Which frames (times ``pts`` into a file created at ``created``) were recorded in
    ``[after, before)``; None when the file carries no creation time."""
    if created is None:
        return None
    rec = (created - _EPOCH).total_seconds() + np.asarray(pts, dtype=np.float64)
    mask = np.ones(len(rec), dtype=bool)
    if after is not None:
        mask &= rec >= (after - _EPOCH).total_seconds() - 1e-6
    if before is not None:
        mask &= rec < (before - _EPOCH).total_seconds() - 1e-6
    return mask


def recorded_window(created: _dt.datetime | None, pts: np.ndarray, after: _dt.datetime | None,
                    before: _dt.datetime | None) -> tuple[int, int] | None:
    """:func:`recorded_mask` of frame times ``pts`` in increasing order, as positions ``[lo, hi)``:
    found by bisection, so a memory-mapped ``pts`` is read a few pages at a time, not whole."""
    if created is None:
        return None
    c = (created - _EPOCH).total_seconds()
    n = len(pts)
    lo, hi = 0, n
    if after is not None:
        a = (after - _EPOCH).total_seconds() - 1e-6
        lo = int(np.searchsorted(pts, a - c, side="left"))
        while lo > 0 and c + float(pts[lo - 1]) >= a:  # the same float sums as recorded_mask
            lo -= 1
        while lo < n and not c + float(pts[lo]) >= a:
            lo += 1
    if before is not None:
        b = (before - _EPOCH).total_seconds() - 1e-6
        hi = int(np.searchsorted(pts, b - c, side="left"))
        while hi > 0 and not c + float(pts[hi - 1]) < b:
            hi -= 1
        while hi < n and c + float(pts[hi]) < b:
            hi += 1
    return lo, max(lo, hi)
