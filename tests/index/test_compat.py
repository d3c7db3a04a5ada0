"""An index written by vidsearch before the package was reorganised still reads, unchanged.

``tests/data/index-before-renovation.tgz`` is the demo archive indexed with ``demo-colours`` by
commit ada91f9 (the last flat-module layout): its catalog, shards and markers, without the
query-side copies (they are rebuilt). The video files themselves are not included.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from conftest import run_cli

DATA = Path(__file__).resolve().parents[1] / "data" / "index-before-renovation.tgz"
#: what `vidsearch query red --json` answered on that commit: (video_id prefix, start, end, peak)
EXPECTED_RED = [("4c9e792b9f53", 20.0, 35.0, 20.0), ("ed17b5e89fc9", 40.0, 52.0, 40.0)]


def _old_index(tmp_path: Path) -> Path:
    with tarfile.open(DATA) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "index"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "matrix" not in p.parts}


def test_old_index_answers_the_same(home, colour, runner, tmp_path):
    index = _old_index(tmp_path)
    shards_before = {k: v for k, v in _digest(index).items() if k.startswith("shards")}
    status = json.loads(run_cli(runner, "--index", index, "status", "--json").stdout)
    assert status["videos"] == 3 and status["frames"] == 285
    assert (status["chunks"]["done"], status["chunks"]["pending"], status["chunks"]["failed"]) == (6, 0, 0)
    out = json.loads(run_cli(runner, "--index", index, "query", "red", "--json").stdout)
    got = [(r["video_id"][:12], r["start"], r["end"], r["peak_time"]) for r in out["ranges"]]
    assert got == EXPECTED_RED
    assert all(r["peak_score"] > 0.99 for r in out["ranges"])
    rows = run_cli(runner, "--index", index, "sql", "SELECT count(*) AS n FROM frames", "--json").stdout
    assert json.loads(rows)[0]["n"] == 285
    # reading an old index rewrites none of its shards or markers
    assert {k: v for k, v in _digest(index).items() if k.startswith("shards")} == shards_before


def test_old_shards_read_beside_new_ones_in_sql(home, colour, runner, tmp_path):
    """The frames view gives every row ``source_pts``, ``region`` and ``box``: an old shard's rows
    the defaults (its own time, the whole frame); once gated chunks join them, each shard's own
    values, in vidsearch sql and in the stock duckdb CLI."""
    import shutil
    import subprocess
    import sys

    from vidsearch.demo.cctv import make_cctv

    index = _old_index(tmp_path)
    cols = "SELECT count(*) AS n, count(*) FILTER (WHERE source_pts = pts) AS same, max(region) AS r, " \
           "count(*) FILTER (WHERE box = [0.0, 0.0, 1.0, 1.0]::FLOAT[4]) AS whole FROM frames"
    sql = lambda q: json.loads(run_cli(runner, "--index", index, "sql", q, "--json").stdout)  # noqa: E731
    run_cli(runner, "--index", index, "status")  # a writer opens the catalog: its rows are re-read once
    assert sql(cols) == [{"n": 285, "same": 285, "r": 0, "whole": 285}]
    # a static camera, ingested now (gated): some rows carry an earlier frame's embedding
    make_cctv(tmp_path / "new" / "still.mp4", 40.0, (160, 90), 5, subject=[(10.0, 20.0)], figure=0.6)
    run_cli(runner, "--index", index, "ingest", tmp_path / "new", "--model", "demo-colours", "-q")
    got = sql(cols)[0]
    assert got["n"] == 325 and 285 < got["same"] < 325 and got["r"] == 0 and got["whole"] == 325
    reused = sql("SELECT pts, source_pts FROM frames WHERE path LIKE '%still.mp4' AND source_pts < pts ORDER BY pts")
    assert reused and all(r["source_pts"] < r["pts"] for r in reused)
    exe = Path(sys.executable).parent / "duckdb"
    exe = str(exe) if exe.exists() else shutil.which("duckdb")
    out = subprocess.run([exe, "-readonly", "-json", str(index / "catalog.duckdb"), "-c", cols],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [got]
