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
