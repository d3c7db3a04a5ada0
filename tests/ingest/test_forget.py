"""`vidsearch forget`: files the user names, or those gone from disk, leave the index whole (every
model and channel), a video another file still holds stays, and nothing else is touched."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from conftest import run_cli


def ingest(runner, archive, *extra):
    return json.loads(run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json", *extra).stdout)


def forget(runner, *args, ok=True):
    res = run_cli(runner, "forget", *map(str, args), "--json", ok=ok)
    return json.loads(res.stdout) if ok else res


def red(runner) -> set[tuple[str, float, float]]:
    out = json.loads(run_cli(runner, "query", "red", "--json").stdout)["ranges"]
    return {(Path(r["path"]).relative_to(Path(r["path"]).parents[1]).as_posix(), r["start"], r["end"]) for r in out}


def rows(home: Path) -> list[tuple]:
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        return con.execute("SELECT video_id, pts FROM frames ORDER BY 1, 2").fetchall()
    finally:
        con.close()


def test_forget_names_dry_run_directories_duplicates_and_missing(home, colour, archive, runner):
    shutil.copy(archive / "cam-a" / "noon.mp4", archive / "cam-b" / "noon-copy.mp4")  # the same content twice
    ingest(runner, archive, "--tags")
    everything = rows(home)
    assert red(runner) == {("cam-a/morning.mp4", 10.0, 18.0), ("cam-b/noon-copy.mp4", 20.0, 26.0)}
    morning = archive / "cam-a" / "morning.mp4"

    dry = forget(runner, morning, "--dry-run")
    assert dry["dry_run"] and dry["files"] == [str(morning)]
    [v] = dry["videos"]
    assert (v["path"], v["chunks"]) == (str(morning), 8)  # 4 image chunks and their 4 tag chunks
    assert rows(home) == everything

    res = forget(runner, morning)
    assert res["videos"] == dry["videos"] and not res["dry_run"]
    assert red(runner) == {("cam-b/noon-copy.mp4", 20.0, 26.0)}
    assert len(rows(home)) == len(everything) - 40
    assert not list((home / "index" / "shards").rglob(f"{v['video_id']}"))
    tags = run_cli(runner, "sql", "SELECT DISTINCT path FROM tags", "--json").stdout
    assert "morning.mp4" not in tags and "noon" in tags
    assert morning.is_file()  # the video file itself is not touched

    # --missing and a directory that is not there (an unmounted drive): proves nothing, kept and said
    shutil.move(archive / "cam-b", archive.parent / "unmounted")
    res = forget(runner, "--missing")
    assert res["files"] == [] and res["unreachable"] == [str(archive / "cam-b" / "evening.mp4"), str(archive / "cam-b" / "noon-copy.mp4")]
    text = run_cli(runner, "forget", "--missing").output
    assert f"kept 2 files whose directory is not there either (an unmounted drive?), e.g. {archive / 'cam-b' / 'evening.mp4'}" in text
    shutil.move(archive.parent / "unmounted", archive / "cam-b")

    # a directory: noon.mp4 goes, its content stays (noon-copy.mp4 holds it) and is named by that file
    res = forget(runner, archive / "cam-b")
    assert res["files"] == [str(archive / "cam-b" / "evening.mp4"), str(archive / "cam-b" / "noon-copy.mp4")]
    assert [Path(v["path"]).name for v in res["videos"]] == ["evening.mp4"]
    assert red(runner) == {("cam-a/noon.mp4", 20.0, 26.0)}

    # gone from disk
    (archive / "cam-a" / "noon.mp4").unlink()
    res = forget(runner, "--missing")
    assert res["files"] == [str(archive / "cam-a" / "noon.mp4")] and len(res["videos"]) == 1
    assert rows(home) == []
    assert "has no frames yet" in run_cli(runner, "query", "red", ok=False).output
    status = json.loads(run_cli(runner, "status", "--json").stdout)
    assert status["videos"] == 0 and status["chunks"]["done"] == 0

    # forgotten files are indexed again when scanned
    assert ingest(runner, archive)["chunks_done"] == 4 + 3 + 3
    assert red(runner) == {("cam-a/morning.mp4", 10.0, 18.0), ("cam-b/noon-copy.mp4", 20.0, 26.0)}


def test_forget_says_what_it_cannot_do_in_one_line(home, colour, archive, runner, tmp_path):
    res = forget(runner, ok=False)
    assert res.exit_code == 1 and "name the files or directories to forget, or pass --missing or --detached" in res.output
    res = forget(runner, archive, ok=False)
    assert res.exit_code == 1 and "no index at" in res.output
    ingest(runner, archive)
    res = forget(runner, tmp_path / "elsewhere", ok=False)
    assert res.exit_code == 1 and f"{tmp_path / 'elsewhere'}: no indexed file there" in res.output
    assert forget(runner, "--missing") == {"files": [], "videos": [], "chunks": 0, "detached": [], "unreachable": [],
                                           "dry_run": False}
    assert forget(runner, "--detached")["files"] == []  # alone, it forgets no file
    assert len(rows(home)) == 95
    noon = archive / "cam-a" / "noon.mp4"
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"))
    con.execute("UPDATE chunks SET status = 'pending' WHERE video_id = (SELECT video_id FROM files WHERE path = ?) "
                "AND start_s = 0", [str(noon)])  # as if queued for workers
    con.close()
    res = forget(runner, noon, ok=False)
    assert res.exit_code == 1 and "1 chunks of these files are still queued" in res.output and "--force" in res.output
    assert len(rows(home)) == 95
    assert len(forget(runner, noon, "--force")["videos"]) == 1
    text = run_cli(runner, "forget", archive / "cam-b" / "evening.mp4").stdout
    assert text.splitlines() == ["forgot 1 file: 1 video and 3 chunks left the index", f"  {archive / 'cam-b' / 'evening.mp4'} (3 chunks)"]
