"""End to end on one machine: generated videos -> ingest -> Parquet + DuckDB -> query ranges."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ARCHIVE, make_audio_only, run_cli
from vidsearch.index.shards import IndexStore
from vidsearch.demo.synth import make_video


def ingest(runner, archive, *extra, ok=True):
    return run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json", *extra, ok=ok)


def report(result) -> dict:
    return json.loads(result.stdout)


def frame_rows(home) -> list[tuple]:
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        return con.execute("SELECT video_id, pts FROM frames ORDER BY 1, 2").fetchall()
    finally:
        con.close()


def query(runner, text, *extra) -> list[dict]:
    out = run_cli(runner, "query", text, "--json", *extra)
    return json.loads(out.stdout)["ranges"]


def spans(ranges) -> set[tuple[str, float, float]]:
    return {(Path(r["path"]).name, r["start"], r["end"]) for r in ranges}


def test_query_returns_exactly_the_scene_ranges(home, colour, archive, runner):
    rep = report(ingest(runner, archive))
    assert rep["videos"] == 3 and rep["chunks_failed"] == 0
    assert rep["frames"] == sum(int(d) for d, _ in ARCHIVE.values())  # 1 fps
    assert spans(query(runner, "red")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert spans(query(runner, "something blue")) == {("morning.mp4", 30.0, 34.0), ("noon.mp4", 5.0, 9.0)}
    green = query(runner, "green")
    assert spans(green) == {("evening.mp4", 12.0, 20.0)}
    assert 12.0 <= green[0]["peak_time"] < 20.0 and green[0]["peak_score"] > 0.9
    # filters and limits
    assert spans(query(runner, "red", "--video", "*noon*")) == {("noon.mp4", 20.0, 26.0)}
    assert len(query(runner, "red", "--top", "1")) == 1
    assert query(runner, "red", "--min-score", "0.9999") == []
    # the demo model knows no other words: nothing is better than a made-up answer
    out = run_cli(runner, "query", "a person walking")
    assert "no matches" in out.stdout


def test_table_output_and_thumbnails(home, colour, archive, runner, tmp_path):
    ingest(runner, archive)
    out = run_cli(runner, "query", "red", "--thumbnails", tmp_path / "th")
    lines = out.stdout.splitlines()
    assert lines[0].split()[:6] == ["#", "video", "start", "end", "peak", "score"]
    assert "0:00:10.0" in out.stdout and "0:00:18.0" in out.stdout
    jpgs = sorted((tmp_path / "th").glob("*.jpg"))
    assert len(jpgs) == 2
    from PIL import Image

    img = np.asarray(Image.open(jpgs[0]).convert("RGB")).astype(int)
    r, g, b = img.reshape(-1, 3).mean(0)
    assert r > 150 and g < 90 and b < 90  # the thumbnail shows the red scene


def test_rerun_does_nothing_and_new_files_are_incremental(home, colour, archive, runner):
    first = report(ingest(runner, archive))
    rows = frame_rows(home)
    again = report(ingest(runner, archive))
    assert again["chunks_done"] == 0 and again["chunks_skipped"] == first["chunks_done"]
    assert frame_rows(home) == rows
    make_video(archive / "cam-b" / "night.mp4", 12.0, [(2.0, 6.0, "yellow")], seed=9)
    third = report(ingest(runner, archive))
    assert third["chunks_done"] == 1 and third["frames"] == 12  # 12 s: the 2 s tail joins the first chunk
    assert len(frame_rows(home)) == len(rows) + 12
    assert len(set(frame_rows(home))) == len(frame_rows(home))
    assert spans(query(runner, "yellow")) == {("night.mp4", 2.0, 6.0)}


def test_chunks_done_on_disk_but_not_in_the_catalog_are_recorded_by_the_next_run(home, colour, archive, runner):
    """An ingest killed (SIGKILL, power loss) after writing markers, before it updated the catalog."""
    first = report(ingest(runner, archive))
    catalog = str(home / "index" / "catalog.duckdb")
    con = duckdb.connect(catalog)
    con.execute("UPDATE chunks SET status = 'pending', frames = NULL, shard = NULL")
    con.execute("UPDATE files SET status = 'pending'")
    con.close()
    again = report(ingest(runner, archive))
    assert again["chunks_done"] == 0 and again["chunks_skipped"] == first["chunks_done"]
    con = duckdb.connect(catalog, read_only=True)
    try:
        assert con.execute("SELECT status, count(*), sum(frames) FROM chunks GROUP BY 1").fetchall() == [
            ("done", first["chunks_done"], first["frames"])]
        assert con.execute("SELECT DISTINCT status FROM files").fetchall() == [("indexed",)]
    finally:
        con.close()


def test_moved_and_copied_files_are_recognised_by_content(home, colour, archive, runner):
    ingest(runner, archive)
    rows = frame_rows(home)
    os.rename(archive / "cam-a" / "noon.mp4", archive / "cam-a" / "noon-renamed.mp4")
    shutil.copy(archive / "cam-b" / "evening.mp4", archive / "cam-b" / "evening-copy.mp4")
    rep = report(ingest(runner, archive))
    assert rep["chunks_done"] == 0 and frame_rows(home) == rows
    assert {Path(r["path"]).name for r in query(runner, "red")} == {"morning.mp4", "noon-renamed.mp4"}


def test_changed_settings_replace_old_chunks(home, colour, archive, runner):
    ingest(runner, archive)
    n = len(frame_rows(home))
    rep = report(ingest(runner, archive, "--fps", "2"))
    assert rep["chunks_done"] > 0
    rows = frame_rows(home)
    assert len(rows) == 2 * n and len(set(rows)) == len(rows)  # replaced, not added on top


def test_keyframes_mode_samples_gop_positions(home, colour, archive, runner):
    rep = report(ingest(runner, archive, "--keyframes"))
    # the generated videos have a 2 s GOP: keyframes at 0, 2, 4, ...
    pts = sorted({p for _, p in frame_rows(home)})
    assert rep["frames"] == sum(-(-int(d) // 2) for d, _ in ARCHIVE.values())  # ceil(d / 2)
    assert pts[:4] == [0.0, 2.0, 4.0, 6.0]
    assert spans(query(runner, "green")) == {("evening.mp4", 12.0, 20.0)}


def test_bad_inputs_are_reported_recorded_and_skipped(home, colour, archive, runner):
    bad = archive / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("this is not a video\n" * 50)
    data = (archive / "cam-a" / "morning.mp4").read_bytes()
    (bad / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4 index at the end: unreadable
    make_audio_only(bad / "audio.mp4")
    ts = make_video(bad / "broadcast.mkv", 30.0, [(2.0, 8.0, "orange")], seed=5)
    ts_bytes = ts.read_bytes()
    ts.write_bytes(ts_bytes[: int(len(ts_bytes) * 0.45)])  # header says 30 s; only the start is there
    (bad / "readme.txt").write_text("ignored: not a video extension")
    make_video(bad / "export.h264", 3.0, [])  # a bare H.264 stream, as recorders export: no timestamps
    missing = archive / "no-such-dir"

    result = run_cli(runner, "ingest", archive, missing, "--model", "demo-colours", "--chunk", "10", ok=False)
    assert result.exit_code == 3, result.output  # the good files were indexed; some failed or are partial
    assert "files: 3 indexed, 1 partial, 6 failed" in result.stdout
    err = result.stderr
    assert "partial: " in err and "broadcast.mkv: no frames for 13.0-30.0s" in err
    assert "empty.mp4: empty file (0 bytes)" in err
    assert "notes.mp4: not a readable video" in err
    assert "cut.mp4: not a readable video" in err
    assert "audio.mp4: no video stream" in err
    assert "export.h264: a bare h264 stream (30 frames) with no timestamps, as some recorders export it; put it in " \
           "a container first, e.g. `ffmpeg -framerate 25 -i export.h264 -c copy export.mkv` with the camera's frame " \
           "rate, and index that" in err
    assert "no-such-dir: no such file or directory" in err
    assert "broadcast.mkv: no frames could be decoded between" in err
    for line in err.splitlines():
        assert "Traceback" not in line
    # recorded in the catalog
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    failed = {Path(f["path"]).name for f in status["failed_files"]}
    assert failed == {"empty.mp4", "notes.mp4", "cut.mp4", "audio.mp4", "export.h264", "no-such-dir"}
    assert status["failed_chunks"] and all("broadcast.mkv" in f["path"] for f in status["failed_chunks"])
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT status FROM files WHERE path LIKE '%broadcast.mkv'").fetchone()[0] == "partial"
    con.close()
    # the good videos and the readable start of the truncated stream are searchable
    assert spans(query(runner, "red")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert spans(query(runner, "orange")) == {("broadcast.mkv", 2.0, 8.0)}
    # re-running records the same failures without duplicating anything
    rows = frame_rows(home)
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", ok=False)
    assert frame_rows(home) == rows


def test_a_ts_whose_timestamps_start_again_is_one_line_not_half_indexed(home, colour, tmp_path, runner):
    """Two recordings joined with `cat` into one .ts: its times name two moments (FFmpeg's duration and
    seeks see the second one), so it is refused with the remux that fixes it, not indexed mixed up."""
    seg1 = make_video(tmp_path / "seg1.ts", 20.0, [(5.0, 10.0, "red")], seed=1)
    seg2 = make_video(tmp_path / "seg2.ts", 30.0, [(8.0, 14.0, "blue")], seed=2)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "joined.ts").write_bytes(seg1.read_bytes() + seg2.read_bytes())
    shutil.copy(seg2, archive / "plain.ts")
    result = run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", ok=False)
    assert result.exit_code == 3, result.output
    assert "joined.ts: its timestamps start again after 19.9s (recordings joined into one file, or a recorder " \
           "restarted), so a time in it names two moments; remux it with `ffmpeg -i joined.ts -c copy joined.mkv` " \
           "(continuous times, no re-encoding) and index that" in result.stderr
    assert "files: 1 indexed, 0 partial, 1 failed" in result.stdout
    assert spans(query(runner, "blue")) == {("plain.ts", 8.0, 14.0)}
    assert {Path(r["path"]).name for r in query(runner, "red")} <= {"plain.ts"}  # nothing of the joined file
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert {Path(f["path"]).name for f in status["failed_files"]} == {"joined.ts"}


def test_a_replaced_file_is_indexed_anew_and_its_old_content_set_aside(home, colour, archive, runner):
    """A file replaced by other content (a re-export, another drive mounted at the same place): the
    new content is indexed, and the old one leaves every search once that is done, since its ranges
    would be shown and cut from the new file. It is set aside, not deleted: when an ingest finds
    that content again it comes back without being embedded again. A file that only fails to read
    keeps what was indexed of it."""
    ingest(runner, archive)
    assert ("morning.mp4", 10.0, 18.0) in spans(query(runner, "red"))
    morning = archive / "cam-a" / "morning.mp4"
    old = sorted(v for v, _ in frame_rows(home))
    good = morning.read_bytes()

    morning.write_text("not a video any more\n" * 100)  # unreadable now: nothing of it is dropped
    res = ingest(runner, archive, ok=False)
    assert res.exit_code == 3 and "replaced:" not in res.stderr
    assert spans(query(runner, "red")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert sorted(v for v, _ in frame_rows(home)) == old

    morning.write_bytes(good)  # back as it was: nothing to redo, nothing replaced
    res = ingest(runner, archive)
    assert report(res)["chunks_done"] == 0 and "replaced:" not in res.stderr

    make_video(morning, 20.0, [(4.0, 9.0, "red")], seed=7)  # re-exported: other content at the same path
    res = ingest(runner, archive)
    rep = report(res)
    [gone] = rep["replaced"]
    assert (gone["path"], gone["chunks"]) == (str(morning), 4)
    assert f"replaced: {morning}: its content changed since it was indexed; the old content ({gone['video_id'][:12]}, " \
           "4 chunks) is set aside: out of every search, back if an ingest finds it again (`vidsearch forget --detached` " \
           "deletes it)" in res.stderr
    assert spans(query(runner, "red")) == {("morning.mp4", 4.0, 9.0), ("noon.mp4", 20.0, 26.0)}
    rows = frame_rows(home)
    assert gone["video_id"] not in {v for v, _ in rows} and len(rows) == len(old) - 40 + 20
    assert not list((home / "index" / "shards").rglob(f"{gone['video_id']}/*"))
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert status["videos"] == 3 and status["detached"] == {"videos": 1, "chunks": 4}
    assert report(ingest(runner, archive))["replaced"] == []

    # the first content at that path again (the first drive mounted back): back, not embedded again
    morning.write_bytes(good)
    res = ingest(runner, archive)
    rep = report(res)
    assert rep["chunks_done"] == 0 and [r["chunks"] for r in rep["replaced"]] == [2]  # the re-export's, set aside in turn
    assert spans(query(runner, "red")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    assert sorted(v for v, _ in frame_rows(home)) == old

    res = json.loads(run_cli(runner, "forget", "--detached", "--json").stdout)
    assert (res["files"], [d["chunks"] for d in res["detached"]]) == ([], [2])
    assert "detached" not in json.loads(run_cli(runner, "status", "--json").stdout)
    assert sorted(v for v, _ in frame_rows(home)) == old  # nothing else touched


def test_a_file_that_changes_after_planning_is_not_indexed_under_its_old_id(home, colour, archive, runner):
    """A file still being written (or replaced) between planning and its chunks: they fail in one
    line each, and the next ingest indexes what is there then, once."""
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.local import LocalBackend
    from vidsearch.ingest.pipeline import ingest as run_ingest
    from vidsearch.ingest.plan import IngestOptions
    from vidsearch.models.encoder import Encoder

    evening = archive / "cam-b" / "evening.mp4"
    encoder = Encoder.load("demo-colours")

    def grow(plan):
        assert any(s.path == str(evening) and s.size == evening.stat().st_size for s in plan.todo)
        with open(evening, "ab") as f:  # a recorder still writing it
            f.write(b"\0" * 1000)

    rep = run_ingest([archive], IndexStore(home / "index"), encoder.info, LocalBackend(encoder),
                     IngestOptions(chunk_s=10.0), on_plan=grow)
    failed = [f for f in rep.failures if f.path == str(evening)]
    assert len(failed) == 3 and rep.chunks_done == 7
    assert "changed since its chunks were planned" in failed[0].error and "still being written, or replaced?" in failed[0].error
    assert "evening.mp4" not in {n for n, _, _ in spans(query(runner, "green"))}  # nothing under the id of what was planned

    res = report(ingest(runner, archive))
    assert (res["chunks_done"], res["chunks_failed"], res["replaced"]) == (3, 0, [])
    assert spans(query(runner, "green")) == {("evening.mp4", 12.0, 20.0)}
    assert len({v for v, _ in frame_rows(home)}) == 3


def test_a_file_name_that_is_not_utf8_is_one_line(home, colour, tmp_path, runner):
    """A name in another system's encoding (Latin-1 bytes from an old share): one line, the rest goes on."""
    archive = tmp_path / "archive"
    archive.mkdir()
    make_video(archive / "ok.mp4", 20.0, [(5.0, 12.0, "red")])
    os.rename(make_video(tmp_path / "x.mp4", 5.0, []), os.fsencode(archive) + b"/caf\xe9.mp4")
    result = run_cli(runner, "ingest", archive, "--model", "demo-colours", ok=False)
    assert result.exit_code == 3, result.output
    assert f"failed: {archive}/caf\\xe9.mp4: its name is not valid UTF-8 (another system's encoding); rename it" in result.stderr
    assert "files: 1 indexed, 0 partial, 1 failed" in result.stdout and "Traceback" not in result.output
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert [f["path"] for f in status["failed_files"]] == [f"{archive}/caf\\xe9.mp4"]
    assert spans(query(runner, "red")) == {("ok.mp4", 5.0, 12.0)}


def test_only_bad_input_exits_nonzero(home, colour, tmp_path, runner):
    (tmp_path / "a.mp4").write_bytes(b"")
    result = run_cli(runner, "ingest", tmp_path / "a.mp4", "--model", "demo-colours", ok=False)
    assert result.exit_code == 1 and "empty file" in result.stderr


def test_missing_model_is_one_line(home, archive, runner):
    result = run_cli(runner, "ingest", archive, ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "vidsearch model pull clip-vit-b-32" in result.stderr
    result = run_cli(runner, "ingest", archive, "--model", home / "nope", ok=False)
    assert "nope does not exist" in result.stderr and "model export" in result.stderr


def test_query_with_a_model_that_did_not_index_is_an_error(home, colour, tiny, archive, runner):
    ingest(runner, archive)
    result = run_cli(runner, "query", "red", "--model", "tiny-random", ok=False)
    assert result.exit_code == 1 and "demo-colours" in result.stderr and "--model" in result.stderr


def test_empty_index_query_says_what_to_do(home, colour, runner):
    result = run_cli(runner, "query", "red", ok=False)
    assert result.exit_code == 1 and "vidsearch ingest" in result.stderr


def test_shards_markers_and_parquet_layout(home, colour, archive, runner):
    ingest(runner, archive)
    store = IndexStore(home / "index")
    shards = sorted(store.shards_root.rglob("*.parquet"))
    markers = sorted(store.shards_root.rglob("*.done"))
    assert len(shards) == len(markers) == 10  # 40 s -> 4 chunks of 10 s, 30 s -> 3, 25 s -> 3 (a 5 s tail is kept)
    assert not list(store.shards_root.rglob("*.tmp"))
    for s in shards:
        assert s.with_suffix(".done").exists()
        meta = pq.ParquetFile(s).metadata
        col = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
        emb = [c for p, c in col.items() if p.startswith("embedding")][0]
        assert "PLAIN_DICTIONARY" not in str(emb.encodings) and "RLE_DICTIONARY" not in str(emb.encodings)
        t = pq.read_table(s)
        assert t.schema.names == ["video_id", "path", "chunk_id", "pts", "model_id", "embedding", "source_pts"]
        src, pts = t.column("source_pts").to_numpy(), t.column("pts").to_numpy()
        assert np.all(src <= pts) and set(src) <= set(pts)  # a reused embedding comes from an earlier row of the chunk
        assert t.schema.field("embedding").type.list_size == 10 and str(t.schema.field("embedding").type.value_type) == "float"
        norms = np.linalg.norm(np.stack(t.column("embedding").to_numpy(zero_copy_only=False)), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-5)
        assert json.loads(s.with_suffix(".done").read_text())["frames"] == t.num_rows


def test_stock_duckdb_cli_opens_the_catalog(home, colour, archive, runner):
    ingest(runner, archive)
    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        cli = shutil.which("duckdb")
    if not cli:
        pytest.skip("the duckdb CLI (pip package duckdb-cli) is not installed")
    sql = (
        "SELECT count(*) FROM frames; "
        "SELECT round(max(array_cosine_similarity(embedding, [1,0,0,0,0,0,0,0,0,0]::FLOAT[10])), 2) FROM frames;"
        "SELECT count(*) FROM videos; SELECT count(*) FROM chunks WHERE status = 'done';"
    )
    out = subprocess.run([str(cli), "-readonly", "-csv", "-noheader", str(home / "index" / "catalog.duckdb"), "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["95", "1.0", "3", "10"]


def test_random_weight_model_runs_the_real_onnx_path_with_a_warning(home, tiny, archive, runner):
    result = run_cli(runner, "ingest", archive, "--model", "tiny-random", "--json")
    assert "random weights" in result.stderr
    rep = json.loads(result.stdout)
    assert rep["frames"] == 95 and rep["providers"] == ["CPUExecutionProvider"]
    store = IndexStore(home / "index")
    t = pq.read_table(sorted(store.shards_root.rglob("*.parquet"))[0])
    assert t.schema.field("embedding").type.list_size == 16


def test_status_summarises(home, colour, archive, runner):
    ingest(runner, archive)
    out = run_cli(runner, "status").stdout
    assert "3 videos" in out and "95 frames" in out and "10 done, 0 pending, 0 failed" in out
    data = json.loads(run_cli(runner, "status", "--json", "--videos").stdout)
    assert data["hours"] == pytest.approx(95 / 3600, abs=1e-3)
    assert {Path(v["path"]).name: v["done"] for v in data["per_video"]} == {"morning.mp4": 4, "noon.mp4": 3, "evening.mp4": 3}


def test_status_rereads_the_markers_it_needs(home, colour, archive, runner):
    """status looks again at chunks not done yet; --rebuild (or a catalog without chunks) reads every marker."""
    ingest(runner, archive)
    catalog = home / "index" / "catalog.duckdb"

    def chunks() -> dict:
        return json.loads(run_cli(runner, "status", "--json").stdout)["chunks"]

    con = duckdb.connect(str(catalog))
    con.execute("UPDATE chunks SET status = 'pending' WHERE chunk_id IN (SELECT chunk_id FROM chunks LIMIT 2)").fetchall()
    con.execute("DELETE FROM chunks WHERE chunk_id IN (SELECT chunk_id FROM chunks WHERE status = 'done' LIMIT 1)").fetchall()
    con.close()
    assert chunks() == {"done": 9, "pending": 0, "failed": 0, "partial": 0}  # the pending two were done on disk
    assert json.loads(run_cli(runner, "status", "--json", "--rebuild").stdout)["chunks"]["done"] == 10
    catalog.unlink()  # a lost catalog: its chunks come back from the shards
    assert chunks() == {"done": 10, "pending": 0, "failed": 0, "partial": 0}


def test_ctrl_c_keeps_finished_chunks_and_rerun_completes(home, colour, tmp_path):
    """A real SIGINT to a real `vidsearch ingest` process in the middle of the archive."""
    archive = tmp_path / "long"
    for i in range(3):
        make_video(archive / f"v{i}.mp4", 60.0, [(20.0, 30.0, "red")], fps=25, size=(320, 240), seed=i)
    env = {**os.environ, "VIDSEARCH_HOME": str(home)}
    # every frame, ungated: the 36 chunks take ~3 s here (0.4 s at 1 fps, gated), so the interrupt
    # lands seconds before the last
    cmd = [sys.executable, "-m", "vidsearch", "ingest", str(archive), "--model", "demo-colours", "--chunk", "5",
           "--batch-size", "4", "--fps", "25", "--motion", "off"]
    # SIGINT as at a terminal: a test run started in the background (`cmd &`) ignores SIGINT, and the
    # ingest would inherit that and run to the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    shards = home / "index" / "shards"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(shards.rglob("*.done")) if shards.exists() else []) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    done_before = len(list(shards.rglob("*.done")))
    assert 3 <= done_before < 36, "the interrupt should land mid-archive"
    assert not list(shards.rglob("*.tmp"))
    # the catalog reflects what was written before the interrupt
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM chunks WHERE status = 'done'").fetchone()[0] == done_before
    con.close()
    # running again finishes the job: every frame exactly once
    again = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rep = json.loads(again.stdout)
    assert rep["chunks_skipped"] == done_before and rep["chunks_done"] == 36 - done_before
    rows = frame_rows(home)
    assert len(rows) == 4500 and len(set(rows)) == 4500


def test_two_models_side_by_side(home, colour, tiny, archive, runner):
    """Re-index with another model without downtime: both stay queryable, each by its own id."""
    ingest(runner, archive)
    run_cli(runner, "ingest", archive, "--model", "tiny-random", "--chunk", "10")
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert {m["name"]: m["frames"] for m in status["models"]} == {"demo-colours": 95, "tiny-random": 95}
    assert spans(query(runner, "red", "--model", "demo-colours")) == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    out = json.loads(run_cli(runner, "query", "red", "--model", "tiny-random", "--json").stdout)
    assert out["model_id"].startswith("tiny-random@") and out["semantics"] == "random" and out["frames_scanned"] == 95
    # with no --model and two installed models that both indexed, the configured default decides
    from vidsearch.settings import write_config

    write_config(default_model="demo-colours")
    assert json.loads(run_cli(runner, "query", "red", "--json").stdout)["model_id"] == colour.model_id


def test_status_of_a_missing_index_says_so_and_creates_nothing(home, runner, tmp_path):
    result = run_cli(runner, "--index", tmp_path / "typo", "status", ok=False)
    assert result.exit_code == 1 and "no index at" in result.stderr and "vidsearch ingest" in result.stderr
    assert not (tmp_path / "typo").exists()


def test_unwritable_index_is_a_one_line_error(home, colour, archive, runner, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index directory should be")
    result = run_cli(runner, "--index", blocker / "index", "ingest", archive, "--model", "demo-colours", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and last.endswith("not-a-dir/index: Not a directory")


def test_the_readme_demo_finds_what_it_says(home, runner, tmp_path, monkeypatch):
    """`vidsearch demo` then ingest and query, as the README's first command runs them."""
    from vidsearch.demo.synth import DEMO_ARCHIVE

    monkeypatch.chdir(tmp_path)
    out = run_cli(runner, "demo").stdout
    assert "installed model demo-colours@" in out and "vidsearch ingest vidsearch-demo/archive" in out
    rep = report(run_cli(runner, "ingest", "vidsearch-demo/archive", "--json"))  # the demo made its model the default
    assert rep["videos"] == 3 and rep["chunks_failed"] == 0
    expected = {(Path(rel).name, s, e) for rel, (_, scenes) in DEMO_ARCHIVE.items() for s, e, c in scenes if c == "red"}
    assert spans(query(runner, "red")) == expected == {("2026-11-02_0800.mp4", 20.0, 35.0), ("2026-11-02_0900.mp4", 40.0, 52.0)}
    # every file carries the recording start its name says
    assert spans(query(runner, "red", "--after", "2026-11-02T08:30:00Z")) == {("2026-11-02_0900.mp4", 40.0, 52.0)}
    assert spans(query(runner, "red", "--before", "2026-11-02 08:00:30")) == {("2026-11-02_0800.mp4", 20.0, 30.0)}


@pytest.mark.parametrize("args", [
    ["ingest", ".", "--fps", "0"], ["ingest", ".", "--fps", "-1"], ["ingest", ".", "--chunk", "0"],
    ["ingest", ".", "--batch-size", "0"], ["query", "red", "--top", "0"], ["query", "red", "--smooth", "-1"],
    ["query", "red", "--min-score", "2"], ["events", "red", "--min-duration", "-2"],
    ["classify", "-l", "red", "-l", "blue", "--min-prob", "1.5"], ["sql", "SELECT 1", "--limit", "-1"],
])
def test_numbers_out_of_range_are_one_line_usage_errors(home, runner, args):
    res = run_cli(runner, *args, ok=False)
    assert res.exit_code == 2 and "Invalid value" in res.output and "Traceback" not in res.output
