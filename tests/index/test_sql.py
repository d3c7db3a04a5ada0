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


def test_damaged_shard_is_named_with_what_to_do(cams, runner, home):
    """A shard damaged on disk makes the views unreadable: one line naming it and the way out
    (status --verify sets it aside; SQL then reads the rest); in-place damage the quick check cannot
    see still gets the way out."""
    shards = sorted((home / "index" / "shards").rglob("*.parquet"))
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])
    res = run_cli(runner, "sql", "SELECT count(*) FROM frames", ok=False)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.output
    assert f"{shards[0]}: {len(data) // 2} bytes, the marker says {len(data)}" in lines[0]
    assert "vidsearch status --verify" in lines[0]
    shards[0].write_bytes(data)
    assert sql(runner, "SELECT count(*) AS n FROM frames")[0]["n"] == 95  # the same bytes back: readable
    run_cli(runner, "status", "--verify")  # nothing damaged now: nothing set aside
    assert sql(runner, "SELECT count(*) AS n FROM frames")[0]["n"] == 95
    shards[1].write_bytes(b"\0" * shards[1].stat().st_size)  # same size: only the full check sees it
    res = run_cli(runner, "sql", "SELECT count(*) FROM frames", ok=False)
    assert res.exit_code == 1 and "cannot be read" in res.output and "status --verify" in res.output
    assert "DuckDB:" in res.output or str(shards[1]) in res.output
    run_cli(runner, "status", "--verify", ok=False)
    assert not shards[1].exists() and shards[1].with_name(shards[1].name + ".damaged").exists()
    assert 0 < sql(runner, "SELECT count(*) AS n FROM frames")[0]["n"] < 95  # the rest reads again


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


# -- the sandbox: nothing a query does changes the index or reaches outside it ------------------

ALLOWED = "vidsearch sql runs read-only SELECT queries over the index"


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` -> its SHA-256."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def listener():
    """A local TCP port that records every connection made to it (proof of no network attempt)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(conn.recv(1024))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], hits
    stop.set()
    t.join(5)
    srv.close()


@pytest.fixture
def indexed(colour, archive, runner, home):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    return home / "index"


def test_sql_cannot_change_the_index_or_reach_outside_it(indexed, runner, tmp_path, listener):
    port, hits = listener
    idx = indexed
    shard = sorted(idx.glob("shards/*/*/*/*.parquet"))[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    refused = [
        # the statements, with a real shard of this index
        f"COPY (SELECT * FROM read_parquet('{shard}') LIMIT 1) TO '{shard}' (FORMAT parquet)",
        f"EXPORT DATABASE '{idx}/export'",
        f"EXPORT DATABASE '{outside}/export'",
        "SELECT * FROM read_text('/etc/shadow')",
        "SELECT * FROM glob('/root/*')",
        "SET threads = 1",
        "PRAGMA database_list",
        "INSTALL httpfs",
        # more ways to write, reach out or change settings
        f"COPY videos TO '{idx}/videos.csv'",
        f"COPY (SELECT 1) TO '{outside}/one.csv'",
        f"SELECT 1; COPY (SELECT 1) TO '{outside}/two.csv'",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{idx}/three.csv'",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{idx}/four.csv''')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_text('{idx}/../archive/cam-a/noon.mp4')",
        f"SELECT * FROM read_csv('http://127.0.0.1:{port}/x.csv')",
        f"SELECT * FROM 'http://127.0.0.1:{port}/x.parquet'",
        f"INSTALL httpfs FROM 'http://127.0.0.1:{port}'",
        "LOAD httpfs", "FORCE INSTALL httpfs", "UPDATE EXTENSIONS",
        f"ATTACH '{outside}/x.duckdb' AS x", f"ATTACH '{idx}/catalog.duckdb' AS again", "DETACH catalog", "USE memory",
        "SET enable_external_access = true", "RESET threads", "PRAGMA threads = 1", "SET VARIABLE v = 1",
        "CALL pragma_version()", "CHECKPOINT", "VACUUM", "BEGIN", "PREPARE p AS SELECT 1",
        "CREATE TABLE t AS SELECT 1", "CREATE TEMP VIEW v AS SELECT 1", "DROP VIEW frames",
        "DELETE FROM videos", "UPDATE videos SET path = 'x'", "INSERT INTO meta VALUES ('k', 'v')",
    ]
    before = _tree(idx)
    for statement in refused:
        res = run_cli(runner, "sql", "--", statement, ok=False)
        lines = res.output.strip().splitlines()
        assert res.exit_code != 0 and len(lines) == 1 and "Traceback" not in res.output, (statement, res.output)
        if "query(" not in statement:  # query() takes only a SELECT: DuckDB's own parser error says so
            assert ALLOWED in lines[0] or "reads only files inside the index" in lines[0], (statement, lines[0])
            assert "--parquet FILE" in lines[0], lines[0]
    assert _tree(idx) == before  # byte-identical, and no file added
    assert not any(outside.iterdir()) and hits == []
    # the index still answers
    assert sql(runner, "SELECT count(*) AS n FROM frames")[0]["n"] == 95
    assert "95 frames" in run_cli(runner, "status").stdout
    assert run_cli(runner, "query", "red", "--model", "demo-colours", "--json").exit_code == 0


def test_sql_still_reads_the_index(indexed, runner):
    """SELECT-like statements run, and DuckDB may read every file inside the index."""
    idx = indexed
    shard = sorted(idx.glob("shards/*/*/*/*.parquet"))[0]
    n = sql(runner, f"SELECT count(*) AS n FROM read_parquet('{idx}/shards/*/*/*/*.parquet')")[0]["n"]
    assert n == 95 and sql(runner, f"SELECT count(*) AS n FROM read_parquet('{shard}')")[0]["n"] > 0
    assert sql(runner, f"SELECT count(*) AS n FROM glob('{idx}/shards/*/*/*/*.parquet')")[0]["n"] == len(list(idx.glob("shards/*/*/*/*.parquet")))
    assert {r["name"] for r in sql(runner, "SHOW TABLES")} >= {"videos", "files", "chunks", "models", "frames"}
    assert [r["column_name"] for r in sql(runner, "DESCRIBE videos")][:2] == ["video_id", "path"]
    assert sql(runner, "WITH a AS (SELECT 2 AS x) FROM a")[0]["x"] == 2 and sql(runner, "VALUES (1)") == [{"col0": 1}]
    assert len(sql(runner, "SUMMARIZE videos")) > 0
    for explain in ("EXPLAIN SELECT count(*) FROM frames", "EXPLAIN ANALYZE SELECT count(*) FROM frames",
                    "/* plan */ EXPLAIN (FORMAT json) SELECT 1"):
        assert sql(runner, explain), explain
    res = run_cli(runner, "sql", "--", "-- only a comment", ok=False)
    assert res.exit_code != 0 and "empty SQL" in res.output


def test_sandbox_alone_blocks_reads_outside_network_and_settings(indexed, listener, tmp_path):
    """DuckDB's own guards, under the statement check: even a statement that got through could not
    read outside the index, reach the network, install or load extensions, or unlock itself."""
    import duckdb

    from vidsearch.index.sql import sandboxed_connection
    from vidsearch.index.shards import IndexStore

    port, hits = listener
    con, tmp = sandboxed_connection(IndexStore(indexed))
    try:
        assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == 95
        assert not Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0]).is_relative_to(indexed)
        for statement in ("SELECT * FROM read_text('/etc/passwd')", "SELECT * FROM glob('/root/*')",
                          f"SELECT * FROM read_csv('http://127.0.0.1:{port}/x.csv')",
                          f"INSTALL httpfs FROM 'http://127.0.0.1:{port}'", "LOAD httpfs",
                          "SET enable_external_access = true", "SET allowed_directories = ['/']", "SET threads = 1",
                          f"ATTACH '{tmp_path}/x.duckdb' AS x", f"COPY (SELECT 1) TO '{tmp_path}/x.csv'"):
            with pytest.raises(duckdb.Error):
                con.execute(statement).fetchall()
    finally:
        con.close()
        shutil.rmtree(tmp)
    assert hits == [] and not any(tmp_path.glob("x.*"))


# -- output ------------------------------------------------------------------------------------

def test_parquet_output(cams, runner, home, tmp_path):
    import pyarrow.parquet as pq

    q = "SELECT path, pts, embedding, text_embedding('red') AS red FROM frames ORDER BY path, pts"
    out = tmp_path / "out" / "frames.parquet"
    res = run_cli(runner, "sql", q, "--parquet", out)
    assert res.stdout.strip() == f"wrote 95 rows to {out}"
    table = pq.read_table(out)
    assert table.num_rows == 95 and table.column_names == ["path", "pts", "embedding", "red"]
    want = sql(runner, q)
    got = table.to_pylist()
    assert [(r["path"], r["pts"]) for r in got] == [(r["path"], r["pts"]) for r in want]
    assert got[0]["embedding"] == pytest.approx(want[0]["embedding"]) and got[0]["red"] == pytest.approx(want[0]["red"])
    summary = json.loads(run_cli(runner, "sql", q, "--limit", "7", "--parquet", out, "--json").stdout)
    assert summary == {"parquet": str(out), "rows": 7} and pq.read_table(out).num_rows == 7
    assert sorted(p.name for p in out.parent.iterdir()) == ["frames.parquet"]  # no temp file left
    # a failing query leaves the previous file as it was
    res = run_cli(runner, "sql", "SELECT nope FROM frames", "--parquet", out, ok=False)
    assert res.exit_code != 0 and len(res.output.strip().splitlines()) == 1 and pq.read_table(out).num_rows == 7
    # never inside the index (it would overwrite a shard or the catalog)
    idx = home / "index"
    before = _tree(idx)
    for target in (sorted(idx.glob("shards/*/*/*/*.parquet"))[0], idx / "catalog.duckdb", idx / "new.parquet"):
        res = run_cli(runner, "sql", "SELECT 1", "--parquet", target, ok=False)
        assert res.exit_code != 0 and "inside the index" in res.output and len(res.output.strip().splitlines()) == 1
    assert _tree(idx) == before
    res = run_cli(runner, "sql", "SELECT 1", "--parquet", out, "--csv", ok=False)
    assert res.exit_code != 0 and "choose one" in res.output


def test_table_cuts_long_values_in_the_middle(cams, runner):
    from vidsearch.cli.cmd_sql import _cell

    base = "/media/archive/site-north/building-7/floor-2/corridor-camera-12/2026/11/02/"
    a, b = base + "2026-11-02_0800.mp4", base + "2026-11-02_0900.mp4"
    assert len(_cell(a)) == 60 and _cell(a) != _cell(b)
    assert _cell(a).startswith("/media/") and _cell(a).endswith("/2026-11-02_0800.mp4") and "..." in _cell(a)
    assert _cell("short") == "short"
    table = run_cli(runner, "sql", f"SELECT '{a}' AS path UNION ALL SELECT '{b}' ORDER BY path").stdout
    shown = table.splitlines()[2:]
    assert len(shown) == 2 and shown[0] != shown[1]
    assert shown[0].rstrip().endswith("2026-11-02_0800.mp4") and shown[1].rstrip().endswith("2026-11-02_0900.mp4")


@pytest.mark.skipif(_duckdb_cli() is None, reason="the duckdb CLI (pip install duckdb-cli) is not installed")
def test_documented_stock_cli_example(colour, home, runner, tmp_path, monkeypatch):
    """docs/retrospection.md's stock-duckdb command, run as written on the demo archive."""
    from vidsearch import settings
    from vidsearch.demo.synth import DEMO_ARCHIVE, make_demo_archive

    text = (ROOT / "docs" / "retrospection.md").read_text()
    m = re.search(r'```\nduckdb (-readonly) (\S+) \\\n\s+-c "([^"]+)"\n```', text)
    assert m, "docs/retrospection.md has no stock duckdb example"
    flag, catalog, query = m.groups()
    with monkeypatch.context() as mp:  # the documented path is the default home's catalog
        mp.delenv("VIDSEARCH_HOME")
        mp.delenv("XDG_DATA_HOME", raising=False)
        assert Path(catalog).expanduser() == settings.home() / "index" / "catalog.duckdb"
    make_demo_archive(tmp_path / "demo", size=(64, 36))
    run_cli(runner, "ingest", tmp_path / "demo", "--model", "demo-colours")
    out = subprocess.run([_duckdb_cli(), flag, "-json", str(home / "index" / "catalog.duckdb"), "-c", query],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    red = {rel: [(s, e) for s, e, c in scenes if c == "red"] for rel, (_, scenes) in DEMO_ARCHIVE.items()}
    assert len(rows) == 5
    for r in rows:
        rel = "/".join(Path(r["path"]).parts[-2:])
        assert any(s <= r["pts"] < e for s, e in red[rel]), r
