"""Recorded time: ISO 8601 parsing to aware UTC, creation_time tags, the recorded-time mask."""
from __future__ import annotations

import numpy as np
import pytest

from vidsearch.core.timeparse import parse_creation_time, parse_when, recorded_mask
from vidsearch.errors import UserError


def test_parse_when():
    assert parse_when("2026-11-02").isoformat() == "2026-11-02T00:00:00+00:00"
    assert parse_when("2026-11-02 08:30").isoformat() == "2026-11-02T08:30:00+00:00"
    assert parse_when("2026-11-02T09:30:00+01:00").isoformat() == "2026-11-02T08:30:00+00:00"
    assert parse_when("2026-11-02T08:00:00.000000Z").isoformat() == "2026-11-02T08:00:00+00:00"
    with pytest.raises(UserError, match="ISO 8601"):
        parse_when("yesterday")
    assert parse_when(None) is None and parse_when("") is None


def test_creation_time_and_recorded_mask():
    assert parse_creation_time("garbage") is None and parse_creation_time(None) is None
    created = parse_creation_time("2026-11-02T08:00:00.000000Z")
    pts = np.arange(0.0, 10.0)
    mask = recorded_mask(created, pts, parse_when("2026-11-02T08:00:03Z"), parse_when("2026-11-02T08:00:07Z"))
    assert mask.tolist() == [False] * 3 + [True] * 4 + [False] * 3  # [after, before)
    assert recorded_mask(created, pts, None, None).all()
    assert recorded_mask(None, pts, None, None) is None  # no creation time: the caller leaves the file out


def test_recorded_window_is_the_mask_as_positions():
    import datetime as dt

    from vidsearch.core.timeparse import recorded_window

    created = dt.datetime(2026, 11, 2, 8, 0, 0, 250000, tzinfo=dt.timezone.utc)
    pts = np.cumsum(np.random.default_rng(1).uniform(0.1, 1.5, size=500))
    at = lambda s: created + dt.timedelta(seconds=float(s))  # noqa: E731
    cases = [(None, None), (at(pts[10]), None), (None, at(pts[400])), (at(pts[10]), at(pts[11])),
             (at(pts[0] - 5), at(pts[-1] + 5)), (at(pts[-1] + 1), None), (None, at(pts[0])), (at(pts[300]), at(pts[200]))]
    for after, before in cases:
        mask = recorded_mask(created, pts, after, before)
        lo, hi = recorded_window(created, pts, after, before)
        assert mask.tolist() == [lo <= i < hi for i in range(len(pts))], (after, before)
    assert recorded_window(None, pts, at(1), None) is None
