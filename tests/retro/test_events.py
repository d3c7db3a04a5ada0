"""Events: hysteresis intervals, first appearance and dwell times (pure logic, then end to end)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.retro.events import csv_rows, summarise, thresholds, video_events
from vidsearch.demo.synth import make_video

# a colour between red and grey whose "red" score is about 0.53-0.58 with the demo model:
# between --low 0.4 and --high 0.8 (see test_hysteresis_keeps_a_wavering_presence_as_one_event)
REDDISH = (0.696, 0.304, 0.304)


# -- pure ------------------------------------------------------------------------------------
def test_hysteresis_exact_intervals_first_appearance_and_dwell():
    pts = np.arange(40, dtype=float)
    s = np.zeros(40)
    s[5:10] = 1.0  # strong
    s[10:14] = 0.6  # weaker, but above low: still the same event with hysteresis
    s[14:17] = 1.0
    s[25:28] = 0.6  # never reaches high: not an event
    s[30:33] = 0.9
    ev = video_events("v", pts, s, high=0.8, low=0.5, smooth_s=0)
    assert [(e.start, e.end) for e in ev.events] == [(5.0, 17.0), (30.0, 33.0)]
    assert ev.first_appearance == 5.0 and ev.total_dwell == 15.0 and ev.longest_dwell == 12.0
    assert [e.frames for e in ev.events] == [12, 3]
    assert ev.events[0].peak_time == 5.0 and ev.events[1].peak_score == 0.9
    # no hysteresis: the weaker stretch splits the first event; a 4 s hole is wider than the merge gap
    ev = video_events("v", pts, s, high=0.8, low=0.8, smooth_s=0)
    assert [(e.start, e.end) for e in ev.events] == [(5.0, 10.0), (14.0, 17.0), (30.0, 33.0)]
    assert ev.total_dwell == 11.0 and ev.longest_dwell == 5.0
    # a wider merge gap joins them again; min duration drops the short one
    ev = video_events("v", pts, s, high=0.8, low=0.8, smooth_s=0, max_gap_s=5.0, min_duration_s=4.0)
    assert [(e.start, e.end) for e in ev.events] == [(5.0, 17.0)]
    # the last event is clipped to the duration
    s2 = np.zeros(10)
    s2[7:] = 1.0
    ev = video_events("v", np.arange(10.0), s2, high=0.5, smooth_s=0, duration=9.5)
    assert [(e.start, e.end) for e in ev.events] == [(7.0, 9.5)]


def test_no_events_and_unsorted_input():
    ev = video_events("v", np.arange(5.0), np.zeros(5), high=0.5)
    assert ev.events == [] and ev.first_appearance is None and ev.total_dwell == 0.0 and ev.longest_dwell == 0.0
    assert video_events("v", np.zeros(0), np.zeros(0), high=0.5).frames == 0
    pts = np.array([3.0, 1.0, 2.0, 0.0])
    s = np.array([0.0, 1.0, 1.0, 0.0])
    ev = video_events("v", pts, s, high=0.5, smooth_s=0)
    assert [(e.start, e.end) for e in ev.events] == [(1.0, 3.0)]


def test_default_thresholds_are_relative_to_the_scores():
    scores = np.array([0.1] * 9 + [0.9])
    hi, lo = thresholds(scores)
    assert hi == pytest.approx(0.5) and lo == pytest.approx(0.42)
    assert thresholds(scores, high=0.7) == (0.7, pytest.approx(0.42))
    assert thresholds(scores, high=0.3, low=0.6) == (0.3, 0.3)  # low never above high
    assert thresholds(np.zeros(0)) == (float("inf"), float("inf"))


def test_summary_and_csv_rows():
    pts = np.arange(20.0)
    s = np.zeros(20)
    s[2:4] = s[10:15] = 1
    a = video_events("a", pts, s, high=0.5, smooth_s=0, path="/x/a.mp4")
    b = video_events("b", pts, np.zeros(20), high=0.5, smooth_s=0, path="/x/b.mp4")
    assert summarise([a, b]) == {"videos": 2, "videos_with_events": 1, "events": 2, "total_dwell": 7.0, "longest_dwell": 5.0}
    rows = csv_rows([a, b])
    assert [(r["event"], r["start"], r["end"], r["duration"]) for r in rows] == [(1, 2.0, 4.0, 2.0), (2, 10.0, 15.0, 5.0)]
    assert {(r["first_appearance"], r["total_dwell"], r["longest_dwell"]) for r in rows} == {(2.0, 7.0, 5.0)}


# -- end to end with the colour model ----------------------------------------------------------
@pytest.fixture
def door_archive(archive):
    """The shared archive plus a video with two red visits (and one with a creation time)."""
    make_video(archive / "cam-door" / "door.mp4", 90.0, [(20.0, 35.0, "red"), (45.0, 50.0, "blue"), (60.0, 66.0, "red")],
               seed=7, creation_time="2026-11-02T08:00:00Z")
    return archive


def ingest(runner, root):
    run_cli(runner, "ingest", root, "--model", "demo-colours", "--chunk", "30")


def by_name(result: dict) -> dict:
    return {Path(v["path"]).name: v for v in result["videos"]}


def test_events_exact_intervals_first_appearance_and_dwell(home, colour, door_archive, runner):
    ingest(runner, door_archive)
    out = json.loads(run_cli(runner, "events", "red", "--json").stdout)
    v = by_name(out)
    assert set(v) == {"door.mp4", "morning.mp4", "noon.mp4", "evening.mp4"}  # every video, with or without events
    door = v["door.mp4"]
    assert [(e["start"], e["end"]) for e in door["events"]] == [(20.0, 35.0), (60.0, 66.0)]
    assert door["first_appearance"] == 20.0 and door["total_dwell"] == 21.0 and door["longest_dwell"] == 15.0
    assert door["first_appearance_at"] == "2026-11-02T08:00:20+00:00"
    assert [(e["start"], e["end"]) for e in v["morning.mp4"]["events"]] == [(10.0, 18.0)]
    assert (v["noon.mp4"]["first_appearance"], v["noon.mp4"]["total_dwell"]) == (20.0, 6.0)
    assert v["evening.mp4"]["events"] == [] and v["evening.mp4"]["first_appearance"] is None
    assert out["summary"] == {"videos": 4, "videos_with_events": 3, "events": 4, "total_dwell": 35.0, "longest_dwell": 15.0}
    assert out["low"] < out["high"]

    # CSV: one row per event
    rows = list(csv.DictReader(io.StringIO(run_cli(runner, "events", "red", "--csv").stdout)))
    assert [(Path(r["path"]).name, r["start"], r["end"], r["total_dwell"]) for r in rows if "door" in r["path"]] == [
        ("door.mp4", "20.0", "35.0", "21.0"), ("door.mp4", "60.0", "66.0", "21.0")]
    assert len(rows) == 4
    # --min-duration drops the 6 s visit; --video narrows the files
    out = json.loads(run_cli(runner, "events", "red", "--video", "*door*", "--min-duration", "10", "--json").stdout)
    assert [(e["start"], e["end"]) for v in out["videos"] for e in v["events"]] == [(20.0, 35.0)]
    # table output
    text = run_cli(runner, "events", "red").stdout
    assert "first seen" in text and "0:00:20.0" in text and "21.0s" in text
    # a word the demo model does not know: no events, said plainly
    assert "no events" in run_cli(runner, "events", "a person walking").stdout


def test_hysteresis_keeps_a_wavering_presence_as_one_event(home, colour, tmp_path, runner):
    root = tmp_path / "waver"
    make_video(root / "w.mp4", 60.0, [(20.0, 30.0, "red"), (30.0, 34.0, REDDISH), (34.0, 44.0, "red")])
    ingest(runner, root)
    one = json.loads(run_cli(runner, "events", "red", "--high", "0.8", "--low", "0.4", "--json").stdout)
    assert [(e["start"], e["end"]) for e in one["videos"][0]["events"]] == [(20.0, 44.0)]
    # without hysteresis (low = high) the reddish stretch splits it, and the 3 s smoothing trims the edges
    two = json.loads(run_cli(runner, "events", "red", "--high", "0.8", "--low", "0.8", "--json").stdout)
    assert [(e["start"], e["end"]) for e in two["videos"][0]["events"]] == [(21.0, 30.0), (34.0, 43.0)]
    assert two["videos"][0]["longest_dwell"] == 9.0
