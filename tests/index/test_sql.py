"""`vidsearch sql`: read-only catalog, text_embedding()/image_embedding(), the documented queries, the stock CLI."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch.demo.synth import make_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cams(home, colour, tmp_path, runner):
    """Three files: two with a creation time (one recorded across midnight), one without."""
    root = tmp_path / "cams"
    make_video(root / "camA" / "2026-11-02_0800.mp4", 40.0, [(10.0, 18.0, "red")], creation_time="2026-11-02T08:00:00Z")
    make_video(root / "camA" / "2026-11-02_2359.mp4", 30.0, [(20.0, 26.0, "red")], creation_time="2026-11-02T23:59:50Z", seed=1)
    make_video(root / "camB" / "2026-11-04_0800.mp4", 25.0, [(5.0, 9.0, "red"), (15.0, 20.0, "blue")], seed=2)
    run_cli(runner, "ingest", root, "--model", "demo-colours", "--chunk", "10")
    return root


def sql(runner, query, *extra):
    return json.loads(run_cli(runner, "sql", "--json", *extra, "--", query).stdout)


def doc_example(name: str) -> str:
    """The SQL block of docs/retrospection.md that starts with ``-- example: NAME``."""
    text = (ROOT / "docs" / "retrospection.md").read_text()
    m = re.search(r"```sql\n(-- example: " + re.escape(name) + r"\n.*?)```", text, re.S)
    assert m, f"docs/retrospection.md has no example {name}"
    # the docs are written for a CLIP model; the demo model knows colours and scores ~1 on a match
    return m.group(1).replace("'a red car'", "'red'").replace("> 0.25", "> 0.5")


def test_text_embedding_ranks_frames(cams, runner):
    rows = sql(runner, "SELECT path, pts, array_cosine_similarity(embedding, text_embedding('red')) AS s "
                       "FROM frames ORDER BY s DESC, path, pts LIMIT 18")
    got = {(Path(r["path"]).name, r["pts"]) for r in rows}
    want = ({("2026-11-02_0800.mp4", float(t)) for t in range(10, 18)} | {("2026-11-02_2359.mp4", float(t)) for t in range(20, 26)}
            | {("2026-11-04_0800.mp4", float(t)) for t in range(5, 9)})
    assert got == want and min(r["s"] for r in rows) > 0.9
    vec = sql(runner, "SELECT text_embedding('red') AS v, text_embedding(NULL) AS n")[0]
    assert vec["v"][0] == pytest.approx(1.0) and sum(abs(x) for x in vec["v"][1:]) == pytest.approx(0.0) and vec["n"] is None
    # CSV and table output
    out = run_cli(runner, "sql", "SELECT path, duration FROM videos ORDER BY path", "--csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(Path(r["path"]).name, float(r["duration"])) for r in rows] == [
        ("2026-11-02_0800.mp4", 40.0), ("2026-11-02_2359.mp4", 30.0), ("2026-11-04_0800.mp4", 25.0)]
    table = run_cli(runner, "sql", "SELECT 1 AS one, text_embedding('blue') AS v").stdout
    from vidsearch.cli import cli

    piped = runner.invoke(cli, ["sql", "-", "--json"], input="-- from a file\nSELECT count(*) AS n FROM frames;\n")
    assert piped.exit_code == 0 and json.loads(piped.stdout) == [{"n": 95}]
    assert table.splitlines()[0].split() == ["one", "v"] and "..." in table


def test_image_embedding(cams, runner, tmp_path):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (230, 26, 26)).save(img)
    row = sql(runner, f"SELECT array_cosine_similarity(image_embedding('{img}'), text_embedding('red')) AS s")[0]
    assert row["s"] > 0.99


def test_catalog_is_read_only(cams, runner, home):
    res = run_cli(runner, "sql", "DELETE FROM videos", ok=False)
    assert res.exit_code != 0 and "read-only" in res.output
    assert sql(runner, "SELECT count(*) AS n FROM videos")[0]["n"] == 3
    bad = run_cli(runner, "sql", "SELECT nope FROM videos", ok=False)
    assert bad.exit_code != 0 and "nope" in bad.output and "Traceback" not in bad.output


def test_missing_model_is_said_plainly(cams, runner, home):
    shutil.rmtree(home / "models" / "demo-colours")
    assert sql(runner, "SELECT count(*) AS n FROM frames")[0]["n"] == 95  # plain SQL needs no model
    res = run_cli(runner, "sql", "SELECT text_embedding('red')", ok=False)
    assert res.exit_code != 0 and "not installed" in res.output


def test_documented_example_queries(cams, runner):
    hours = sql(runner, doc_example("hours-per-camera"))
    assert hours == [{"camera": "camA", "files": 2, "hours": 0.019}, {"camera": "camB", "files": 1, "hours": 0.007}]
    # the 23:59:50 file's red scene (20-26 s in) was recorded on the next day; camB has no creation time
    per_day = sql(runner, doc_example("hits-per-day"))
    assert per_day == [{"day": "2026-11-02", "hit_frames": 8, "videos": 1}, {"day": "2026-11-03", "hit_frames": 6, "videos": 1}]
    by_name = sql(runner, doc_example("hits-per-day-by-name"))
    assert by_name == [{"day": "2026-11-02", "hit_frames": 14}, {"day": "2026-11-04", "hit_frames": 4}]
    best = {Path(r["path"]).name: r for r in sql(runner, doc_example("best-frame-per-video"))}
    assert 10 <= best["2026-11-02_0800.mp4"]["best_time"] < 18 and 5 <= best["2026-11-04_0800.mp4"]["best_time"] < 9


def _duckdb_cli() -> str | None:
    exe = Path(sys.executable).parent / "duckdb"
    return str(exe) if exe.exists() else shutil.which("duckdb")


@pytest.mark.skipif(_duckdb_cli() is None, reason="the duckdb CLI (pip install duckdb-cli) is not installed")
def test_stock_duckdb_cli_opens_the_catalog(cams, home):
    red = "[" + ", ".join(["1"] + ["0"] * 9) + "]::FLOAT[10]"  # the demo model's "red" direction
    q = (f"SELECT count(*) AS n, count(DISTINCT video_id) AS v FROM frames "
         f"WHERE array_cosine_similarity(embedding, {red}) > 0.5")
    out = subprocess.run([_duckdb_cli(), "-readonly", "-json", str(home / "index" / "catalog.duckdb"), "-c", q],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 18, "v": 3}]
    # the documented stock-CLI form: a stored embedding as the query vector
    q = ("SELECT count(*) AS n FROM frames WHERE array_cosine_similarity(embedding, "
         "(SELECT embedding FROM frames WHERE path LIKE '%2026-11-02_0800.mp4' AND pts = 12)) > 0.9")
    out = subprocess.run([_duckdb_cli(), "-readonly", "-json", str(home / "index" / "catalog.duckdb"), "-c", q],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 18}]
