"""Query refinements: several prompts, negative prompts, query by example image, recorded-time filters."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from vidsearch.query.vectors import query_label
from vidsearch.demo.synth import make_video


def spans(out) -> set[tuple[str, float, float]]:
    return {(Path(r["path"]).name, r["start"], r["end"]) for r in out["ranges"]}


def query(runner, *args) -> dict:
    return json.loads(run_cli(runner, "query", *args, "--json").stdout)


def test_query_label():
    assert query_label(["red", "crimson"], ["blue"], ["/x/ex.png"]) == "red | crimson + image:ex.png - not: blue"


def test_negative_prompt_drops_the_blue_scenes_and_keeps_red(home, colour, archive, runner):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    both = {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0), ("morning.mp4", 30.0, 34.0), ("noon.mp4", 5.0, 9.0)}
    assert spans(query(runner, "red", "blue")) == both  # two prompts, averaged: both colours match
    out = query(runner, "red", "blue", "--not", "blue")
    assert spans(out) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert out["prompts"] == ["red", "blue"] and out["negatives"] == ["blue"] and out["query"] == "red | blue - not: blue"
    assert spans(query(runner, "red", "--not", "blue")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    # a negative prompt the model cannot embed changes nothing
    assert spans(query(runner, "red", "blue", "--not", "a person")) == both


def test_query_by_example_image(home, colour, archive, runner, tmp_path):
    from PIL import Image

    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    img = tmp_path / "example.png"
    Image.new("RGB", (200, 120), (230, 26, 26)).save(img)  # a red picture, not square
    out = query(runner, "--image", img)
    assert spans(out) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert out["images"] == [str(img)] and out["prompts"] == []
    green = tmp_path / "green.jpg"
    Image.new("RGB", (64, 64), (26, 178, 38)).save(green)
    assert spans(query(runner, "--image", green)) == {("evening.mp4", 12.0, 20.0)}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    res = run_cli(runner, "query", "--image", bad, ok=False)
    assert res.exit_code != 0 and "cannot read the image" in res.output


def test_recorded_time_filters(home, colour, tmp_path, runner):
    root = tmp_path / "cams"
    make_video(root / "a" / "0800.mp4", 40.0, [(10.0, 18.0, "red")], creation_time="2026-11-02T08:00:00Z")
    make_video(root / "a" / "0900.mp4", 30.0, [(5.0, 9.0, "red")], creation_time="2026-11-02T09:00:00Z", seed=1)
    make_video(root / "b" / "untimed.mp4", 30.0, [(20.0, 26.0, "red")], seed=2)
    run_cli(runner, "ingest", root, "--model", "demo-colours", "--chunk", "10")
    assert len(query(runner, "red")["ranges"]) == 3
    # frames recorded from 08:00:15 on: the first scene is cut at 15 s; the untimed file is left out
    out = query(runner, "red", "--after", "2026-11-02T08:00:15Z")
    assert spans(out) == {("0800.mp4", 15.0, 18.0), ("0900.mp4", 5.0, 9.0)}
    assert out["skipped_no_time"] == 1
    out = query(runner, "red", "--after", "2026-11-02 08:00", "--before", "2026-11-02T09:30:00+01:00")
    assert spans(out) == {("0800.mp4", 10.0, 18.0)}
    res = run_cli(runner, "query", "red", "--before", "2026-11-02T08:00:12Z")
    assert "left out" in res.stderr
    # events take the same options
    ev = json.loads(run_cli(runner, "events", "red", "--after", "2026-11-02T08:30:00Z", "--json").stdout)
    assert [(Path(v["path"]).name, e["start"], e["end"]) for v in ev["videos"] for e in v["events"]] == [("0900.mp4", 5.0, 9.0)]
