"""Shards heal: a damaged shard is named and left out, `status --verify` marks it, the next ingest redoes it."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import run_cli
from vidsearch.index.frames import read_parquet_index
from vidsearch.index.shards import IndexStore, shard_problem


def ingest(runner, archive, *extra, ok=True):
    return run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json", *extra, ok=ok)


def red_spans(runner) -> set[tuple[str, float, float]]:
    res = run_cli(runner, "query", "red", "--json")
    return {(Path(r["path"]).name, r["start"], r["end"]) for r in json.loads(res.stdout)["ranges"]}


def shard_of(home: Path, video: str, start_ms: int) -> tuple[Path, dict]:
    """The shard (and its marker) of ``video``'s chunk starting at ``start_ms``."""
    for marker in (home / "index" / "shards").rglob(f"{start_ms:010d}-*.done"):
        rec = json.loads(marker.read_text())
        if Path(rec["path"]).name == video:
            return marker.with_name(rec["shard"]), rec
    raise AssertionError(f"no shard of {video} at {start_ms} ms")


def overwrite_middle(path: Path, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


def test_markers_record_rows_size_and_sha256(home, colour, archive, runner):
    ingest(runner, archive)
    shard, rec = shard_of(home, "morning.mp4", 10_000)
    data = shard.read_bytes()
    assert rec["rows"] == rec["frames"] == 10 and rec["bytes"] == len(data)
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert shard_problem(shard, rec, full=True) is None


@pytest.mark.parametrize("damage", ["bytes", "truncated"])
def test_a_damaged_shard_is_named_skipped_verified_and_redone(home, colour, archive, runner, damage):
    ingest(runner, archive)
    before = red_spans(runner)
    assert ("morning.mp4", 10.0, 18.0) in before
    shard, rec = shard_of(home, "morning.mp4", 10_000)
    if damage == "bytes":
        overwrite_middle(shard)  # still a readable Parquet file: only the SHA-256 tells
    else:
        shard.write_bytes(shard.read_bytes()[: rec["bytes"] // 2])
    shutil.rmtree(home / "index" / "matrix")  # the query-side copy is rebuilt from the shards

    # the query goes on with the rest and says what it left out, in one line
    res = run_cli(runner, "query", "red")
    warn = [ln for ln in res.stderr.splitlines() if "damaged shard" in ln]
    assert len(warn) == 1 and str(shard) in warn[0] and "10 frames skipped" in warn[0]
    assert "Traceback" not in res.output
    assert red_spans(runner) == before - {("morning.mp4", 10.0, 18.0)}
    # the read-only fallback (straight from Parquet) leaves it out the same way
    fallback = read_parquet_index(IndexStore(home / "index"), rec["model_id"])
    assert fallback.damaged == {str(shard): 10} and fallback.skipped_frames == 10

    # status --verify checks every shard in full and marks the damaged chunk for redoing
    st = json.loads(run_cli(runner, "status", "--verify", "--json").stdout)
    assert st["verified"]["shards"] == 10 and len(st["verified"]["damaged"]) == 1
    assert st["chunks"]["failed"] == 1 and "damaged shard" in st["failed_chunks"][0]["error"]
    assert not shard.exists() and shard.with_name(shard.name + ".damaged").exists()
    text = run_cli(runner, "status", "--verify").stdout
    assert "verified 9 shards: 0 damaged" in text
    # SQL views no longer see the damaged file
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 85
    con.close()
    res = run_cli(runner, "query", "red")
    assert "damaged shard" not in res.stderr

    # the next ingest redoes it, and everything is back
    rep = json.loads(ingest(runner, archive).stdout)
    assert rep["chunks_done"] == 1 and rep["chunks_skipped"] == 9
    assert red_spans(runner) == before
    assert not shard.with_name(shard.name + ".damaged").exists()
    assert json.loads(run_cli(runner, "status", "--verify", "--json").stdout)["verified"] == {"shards": 10, "damaged": []}


def test_an_old_marker_without_checks_still_reads(home, colour, archive, runner):
    """An index written before markers recorded rows / bytes / sha256 reads and verifies as before."""
    ingest(runner, archive)
    for marker in (home / "index" / "shards").rglob("*.done"):
        rec = json.loads(marker.read_text())
        for k in ("rows", "bytes", "sha256"):
            rec.pop(k)
        marker.write_text(json.dumps(rec))
    shutil.rmtree(home / "index" / "matrix")
    assert ("morning.mp4", 10.0, 18.0) in red_spans(runner)
    assert json.loads(run_cli(runner, "status", "--verify", "--json").stdout)["verified"]["damaged"] == []
