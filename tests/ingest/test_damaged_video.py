"""Honest coverage of damaged video: real damaged and truncated files (H.264 in MP4 and MPEG-TS)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest

from conftest import run_cli
from vidsearch.core.plan import Sampling
from vidsearch.demo.synth import make_video
from vidsearch.media.video import DecodeReport, iter_frames

SCENES = [(2.0, 6.0, "red"), (14.0, 18.0, "blue")]


def damaged(src: Path, dst: Path, nbytes: int) -> Path:
    """``src`` with ``nbytes`` in the middle overwritten by (seeded) random bytes."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + nbytes] = random.Random(7).randbytes(nbytes)
    dst.write_bytes(bytes(data))
    return dst


def cut(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("damaged")
    mp4 = make_video(d / "src" / "whole.mp4", 20.0, SCENES, container_options={"movflags": "faststart"})
    ts = make_video(d / "src" / "whole.ts", 20.0, SCENES)
    return {
        "mp4": mp4, "ts": ts,
        "damaged.mp4": damaged(mp4, d / "damaged.mp4", len(mp4.read_bytes()) // 20),
        "cut.mp4": cut(mp4, d / "cut.mp4"),
        "damaged.ts": damaged(ts, d / "damaged.ts", 30_000),
        "cut.ts": cut(ts, d / "cut.ts"),
    }


def times(path: Path, report: DecodeReport | None = None) -> list[float]:
    return [t for t, _ in iter_frames(path, 0.0, 20.0, Sampling(), 32, report=report)]


@pytest.mark.parametrize("kind", ["mp4", "ts"])
def test_decoding_goes_on_past_damaged_packets(videos, kind):
    whole = times(videos[kind])
    assert whole == [float(t) for t in range(20)]
    report = DecodeReport()
    got = times(videos[f"damaged.{kind}"], report)
    assert got[:10] == whole[:10]
    assert got[-6:] == whole[-6:]  # the frames after the damage are there
    assert 1 <= len(whole) - len(got) <= 4
    assert report.frame_interval == pytest.approx(0.1)
    if kind == "mp4":
        assert report.errors and report.first_error


def ingest(runner, path, *extra, ok=False):
    return run_cli(runner, "ingest", path, "--model", "demo-colours", *extra, ok=ok)


def test_damaged_and_truncated_files_are_partial_everywhere(home, colour, videos, runner, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("mp4", "damaged.mp4", "cut.mp4", "damaged.ts", "cut.ts"):
        (archive / (name if "." in name else f"whole.{name}")).write_bytes(videos[name].read_bytes())
    res = ingest(runner, archive)
    assert res.exit_code == 3, res.output  # some files are partial
    assert "files: 2 indexed, 3 partial, 0 failed" in res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("partial: ")]
    by_name = {Path(ln.split(": ")[1]).name: ln for ln in lines}
    assert len(lines) == len(by_name)  # one line per file
    assert "no frames for 10.0-20.0s (10.0s;" in by_name["cut.mp4"]  # the real times, not the chunk start
    assert "no frames for 10.0-12.0s" in by_name["damaged.mp4"]
    assert "damaged.ts" in by_name and "cut.ts" not in by_name  # a cut TS is simply a shorter video
    assert "Traceback" not in res.output

    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert status["chunks"]["partial"] == len(by_name)
    partial = {Path(c["path"]).name: c for c in status["partial_chunks"]}
    assert partial["cut.mp4"]["covered_s"] == 10.0 and partial["cut.mp4"]["missing_s"] == 10.0
    assert partial["cut.mp4"]["missing"] == [[10.0, 20.0]]
    per_video = {Path(v["path"]).name: v for v in status["per_video"]}
    assert per_video["cut.mp4"]["partial"] == 1 and per_video["cut.mp4"]["missing_s"] == 10.0
    assert per_video["whole.mp4"]["partial"] == 0 and per_video["whole.mp4"]["done"] == 1
    text = run_cli(runner, "status", "--videos").stdout
    assert "partial (frames missing)" in text and "cut.mp4 [0-20s]: 10.0s covered, 10.0s missing (10.0-20.0s)" in text
    assert "cut.mp4: 0 done, 0 pending, 0 failed, 1 partial (10.0s missing)" in text

    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        rows = dict(con.execute("SELECT f.path, f.status FROM files f").fetchall())
        chunk = con.execute("SELECT c.status, covered_s, missing_s, missing FROM chunks c JOIN videos v USING (video_id) "
                            "WHERE v.path LIKE '%cut.mp4'").fetchone()
    finally:
        con.close()
    assert {Path(p).name: s for p, s in rows.items()}["cut.mp4"] == "partial"
    assert chunk == ("partial", 10.0, 10.0, "[[10.0, 20.0]]")
    marker = next((home / "index" / "shards").rglob("*.done"))
    assert {"covered_s", "missing_s", "missing"} <= json.loads(marker.read_text()).keys()

    # the damage is in the file: a plain re-run does not redo the partial chunks, and says so again
    again = ingest(runner, archive, "--json")
    assert again.exit_code == 3
    rep = json.loads(again.stdout)
    assert rep["chunks_done"] == 0 and rep["files_partial"] == len(by_name) and rep["files_indexed"] == 5 - len(by_name)
    assert {Path(p["path"]).name for p in rep["partial_files"]} == set(by_name)


def test_a_clean_archive_exits_zero_and_counts_files(home, colour, videos, runner, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "whole.ts").write_bytes(videos["ts"].read_bytes())
    res = ingest(runner, tmp_path / "a", ok=True)
    assert "files: 1 indexed, 0 partial, 0 failed" in res.stdout and "partial:" not in res.stderr
