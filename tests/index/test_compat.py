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
