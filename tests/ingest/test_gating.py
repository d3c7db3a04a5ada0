"""Motion gating in ingest (docs/motion.md): gated and ungated ingests of the same CCTV-like footage
answer alike; every sampled frame keeps its row, a reused row points at an embedded one; chunk
boundaries do not change the decisions; Celery workers gate as local ingest does."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from test_distributed import cluster, distributed, needs_redis, redis_server, rows, submitted  # noqa: F401 - fixtures
from vidsearch.demo.cctv import make_cctv

DURATION = 180.0
VISITS = [(25.0, 45.0), (100.0, 118.0)]  # the red figure, near the camera (the colours model sees it)


@pytest.fixture(scope="module")
def cam(tmp_path_factory) -> Path:
    """3 min of a fixed camera at 320x180, 5 fps, H.264 CRF 28, noise and lighting drift (at the
    rate of the 20 min benchmark footage: 0.2 over 20 min -> 0.03 over 3)."""
    root = tmp_path_factory.mktemp("cctv")
    make_cctv(root / "lobby.mp4", DURATION, (320, 180), 5, subject=VISITS, figure=0.6, drift=0.03)
    return root


def _ingest(runner, index: Path, cam: Path, *args) -> dict:
    out = run_cli(runner, "--index", index, "ingest", cam, "--model", "demo-colours", "--json", *args)
    return json.loads(out.stdout)


def _shard_rows(index: Path) -> dict[tuple[float, int], tuple[float, np.ndarray]]:
    """(pts, region) -> (source_pts, embedding) of every image row of the index."""
    out = {}
    for s in sorted((index / "shards").rglob("*.parquet")):
        t = pq.read_table(s)
        region = t.column("region").to_numpy() if "region" in t.column_names else np.zeros(t.num_rows, int)
        emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))
        for p, r, src, e in zip(t.column("pts").to_numpy(), region, t.column("source_pts").to_numpy(), emb):
            out[(float(p), int(r))] = (float(src), e)
    return out


def _answers(runner, index: Path, text: str = "red", labels: str = "red,black") -> dict:
    q = json.loads(run_cli(runner, "--index", index, "query", text, "--json").stdout)
    ev = json.loads(run_cli(runner, "--index", index, "events", text, "--json").stdout)
    cl = json.loads(run_cli(runner, "--index", index, "classify", "--labels", labels, "--json").stdout)
    n = json.loads(run_cli(runner, "--index", index, "sql", "SELECT count(*) AS n FROM frames", "--json").stdout)[0]["n"]
    return {"query": [(r["start"], r["end"]) for r in q["ranges"]], "events": ev, "classify": cl, "frames": n}


def _events(ev) -> list[tuple[float, float]]:
    return [(e["start"], e["end"]) for v in ev["videos"] for e in v["events"]]


def _segments(cl) -> list[tuple[str, float, float]]:
    return [(s["label"], s["start"], s["end"]) for v in cl["videos"] for s in v["segments"]]


def test_gated_ingest_answers_as_ungated(home, colour, runner, cam, tmp_path):
    off = _ingest(runner, tmp_path / "off", cam, "--motion", "off")
    auto = _ingest(runner, tmp_path / "auto", cam)  # the default
    assert off["frames"] == auto["frames"] == 180
    assert off["frames_embedded"] == 180
    assert 3 <= auto["frames_embedded"] <= 0.5 * 180  # a static camera: most frames reuse an embedding
    a, b = _answers(runner, tmp_path / "off"), _answers(runner, tmp_path / "auto")
    assert a["frames"] == b["frames"] == 180
    assert a["query"] and a["query"] == b["query"]
    assert _events(a["events"]) and _events(a["events"]) == _events(b["events"])
    for start, end in VISITS:  # the subject is found where it was, gated or not
        assert any(s <= start + 3 and e >= end - 3 for s, e in _events(b["events"]))
    assert _segments(a["classify"]) == _segments(b["classify"])
    # every row exists; a reused row carries exactly the embedding of the embedded row it names
    got = _shard_rows(tmp_path / "auto")
    assert sorted(p for p, _ in got) == sorted(p for p, _ in _shard_rows(tmp_path / "off"))
    embedded = {k for k, (src, _) in got.items() if src == k[0]}
    assert len(embedded) == auto["frames_embedded"]
    rows = json.loads(run_cli(runner, "--index", tmp_path / "auto", "sql", "SELECT pts, source_pts FROM frames", "--json").stdout)
    assert {(r["pts"], 0): r["source_pts"] for r in rows} == {k: src for k, (src, _) in got.items()}  # SQL says it too
    for (p, r), (src, e) in got.items():
        assert src <= p and got[(src, r)][0] == src and np.array_equal(e, got[(src, r)][1])
        assert p - src <= 60 + 1  # the longest reuse: one period plus a sampling step
    # the markers record the setting, the rule and the count
    markers = [json.loads(m.read_text()) for m in (tmp_path / "auto" / "shards").rglob("*.done")]
    assert {m["motion"] for m in markers} == {"auto"} and sum(m["embedded"] for m in markers) == auto["frames_embedded"]
    assert all(m["gate"]["max_reuse_s"] == 60 and m["gate"]["threshold"] == 0.06 for m in markers)
    off_markers = [json.loads(m.read_text()) for m in (tmp_path / "off" / "shards").rglob("*.done")]
    assert {m["motion"] for m in off_markers} == {"off"} and not any("gate" in m for m in off_markers)
    # status shows the share that went through the encoder (the catalog keeps it per chunk)
    st = json.loads(run_cli(runner, "--index", tmp_path / "auto", "status", "--json").stdout)
    assert [(m["frames"], m["embedded"]) for m in st["models"]] == [(180, auto["frames_embedded"])]
    line = f"180 frames, {auto['frames_embedded']} through the image encoder"
    assert line in run_cli(runner, "--index", tmp_path / "auto", "status").stdout
    st_off = json.loads(run_cli(runner, "--index", tmp_path / "off", "status", "--json").stdout)
    assert [(m["frames"], m["embedded"]) for m in st_off["models"]] == [(180, 180)]
    assert "through the image encoder" not in run_cli(runner, "--index", tmp_path / "off", "status").stdout


def test_where_everything_changes_every_frame_is_embedded(home, colour, runner, archive, tmp_path):
    """The synthetic archive (moving content all the time, whole-picture colour scenes): the gate
    embeds every frame, and classify's segments are those of --motion off."""
    off = _ingest(runner, tmp_path / "off", archive, "--motion", "off", "--chunk", "10")
    auto = _ingest(runner, tmp_path / "auto", archive, "--chunk", "10")
    assert off["frames"] == auto["frames"] == off["frames_embedded"] == auto["frames_embedded"] == 95
    a = _answers(runner, tmp_path / "off", "blue", "red,green,blue,gray")
    b = _answers(runner, tmp_path / "auto", "blue", "red,green,blue,gray")
    assert {lab for lab, _, _ in _segments(a["classify"])} == {"red", "green", "blue", "gray"}
    assert _segments(a["classify"]) == _segments(b["classify"])
    assert a["query"] == b["query"] and _events(a["events"]) == _events(b["events"]) and a["frames"] == b["frames"]


def test_chunk_boundaries_do_not_change_the_decisions(home, colour, runner, cam, tmp_path):
    one = _ingest(runner, tmp_path / "one", cam, "--chunk", "180")  # one chunk, refresh period 60 s
    sixty = _ingest(runner, tmp_path / "sixty", cam, "--chunk", "60")  # three chunks, the same period
    assert (one["chunks_done"], sixty["chunks_done"]) == (1, 3)
    assert one["frames_embedded"] == sixty["frames_embedded"] < 180
    a, b = _shard_rows(tmp_path / "one"), _shard_rows(tmp_path / "sixty")
    assert {k: s for k, (s, _) in a.items()} == {k: s for k, (s, _) in b.items()}
    # 90 s chunks refresh every 45 s (a divisor of the chunk): still no difference at a boundary
    ninety = _ingest(runner, tmp_path / "ninety", cam, "--chunk", "90")
    forced = {k[0] for k, (s, _) in _shard_rows(tmp_path / "ninety").items() if s == k[0]}
    assert {0.0, 45.0, 90.0, 135.0} <= forced and ninety["frames_embedded"] == len(forced)


def _ranges(runner, index: Path, text: str = "red") -> list[tuple]:
    q = json.loads(run_cli(runner, "--index", index, "query", text, "--json").stdout)
    return [(r["start"], r["end"], r["peak_time"], r.get("box")) for r in q["ranges"]]


def test_regions_are_gated_one_by_one(home, colour, runner, cam, tmp_path):
    """With --regions each region (the whole frame, each tile) reuses its own last embedding: while
    the figure walks, the tiles it is not in keep theirs. Answers, boxes included, are the ungated ones."""
    rep = _ingest(runner, tmp_path / "idx", cam, "--regions", "3")
    got = _shard_rows(tmp_path / "idx")
    frames = sorted({p for p, _ in got})
    assert rep["frames"] == len(frames) == 180 and len(got) == 180 * 10 == rep["region_rows"]
    for (p, r), (src, e) in got.items():  # a row carries exactly its own region's embedding at source_pts
        assert src <= p and got[(src, r)][0] == src and np.array_equal(e, got[(src, r)][1])
    own = {k for k, (src, _) in got.items() if src == k[0]}
    assert rep["region_rows_embedded"] == len(own) and rep["frames_embedded"] == len({p for p, _ in own})
    # frames that embedded some of their regions and reused the others: only with the figure in view
    partial = [p for p in frames if 0 < sum((p, r) in own for r in range(10)) < 10]
    assert len(partial) >= 10 and all(any(a <= p < b + 1 for a, b in VISITS) for p in partial)
    assert len(own) < 10 * rep["frames_embedded"]
    markers = [json.loads(m.read_text()) for m in (tmp_path / "idx" / "shards").rglob("*.done")]
    assert sum(m["embedded_rows"] for m in markers) == len(own) and all(m["gate"]["per_region"] for m in markers)
    line = run_cli(runner, "--index", tmp_path / "text", "ingest", cam, "--model", "demo-colours", "--regions", "3").stdout
    share = len(own) / 1800
    assert f"180 frames ({rep['frames_embedded']} through the image encoder, {len(own):,} of 1,800 region crops, {share:.1%}: motion gating)" in line
    off = _ingest(runner, tmp_path / "off", cam, "--regions", "3", "--motion", "off")
    assert off["region_rows_embedded"] == off["region_rows"] == 1800
    assert _ranges(runner, tmp_path / "idx") == _ranges(runner, tmp_path / "off") != []
    a, b = _answers(runner, tmp_path / "idx"), _answers(runner, tmp_path / "off")
    assert _events(a["events"]) == _events(b["events"]) != [] and _segments(a["classify"]) == _segments(b["classify"])


def test_a_second_ingest_keeps_chunks_done_with_the_other_setting(home, colour, runner, cam, tmp_path):
    _ingest(runner, tmp_path / "idx", cam, "--motion", "off")
    again = _ingest(runner, tmp_path / "idx", cam)  # motion is not part of the chunk id
    assert again["chunks_done"] == 0 and again["chunks_skipped"] == 3


def test_evidence_export_of_a_gated_index(home, colour, runner, cam, tmp_path):
    from vidsearch.evidence.manifest import verify_manifest

    _ingest(runner, tmp_path / "idx", cam)
    hits = tmp_path / "hits.json"
    hits.write_text(run_cli(runner, "--index", tmp_path / "idx", "query", "red", "--json").stdout)
    out = tmp_path / "evidence"
    run_cli(runner, "--index", tmp_path / "idx", "export", hits, "--out", out, "--no-clips")
    assert verify_manifest(out) == []
    scores = (out / "scores.csv").read_text().splitlines()
    assert len(scores) > 1


@distributed
@needs_redis
def test_celery_workers_gate_as_local_ingest(cluster, runner, cam, tmp_path):  # noqa: F811 - fixture
    local = _ingest(runner, tmp_path / "local-index", cam, "--chunk", "60")
    cluster.worker()
    remote = submitted(cluster.submit(cam, "--chunk", "60"))
    assert remote["chunks_done"] == 3 and remote["frames"] == local["frames"]
    assert remote["frames_embedded"] == local["frames_embedded"] < local["frames"]
    assert rows(cluster.index) == rows(tmp_path / "local-index")
    a, b = _shard_rows(cluster.index), _shard_rows(tmp_path / "local-index")
    assert {k: s for k, (s, _) in a.items()} == {k: s for k, (s, _) in b.items()}


def test_an_old_index_takes_gated_chunks_beside_its_old_shards(home, colour, runner, cam, tmp_path):
    """Shards written before source_pts existed and gated ones in one index: the views read both;
    ``source_pts`` of an old shard reads as its pts."""
    import tarfile

    from vidsearch.index.shards import source_pts

    with tarfile.open(Path(__file__).resolve().parents[1] / "data" / "index-before-renovation.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    index = tmp_path / "index"
    run_cli(runner, "--index", index, "status", "--json")
    old = list((index / "shards").rglob("*.parquet"))
    rep = _ingest(runner, index, cam)
    assert rep["frames"] == 180 and rep["frames_embedded"] < 180
    n = json.loads(run_cli(runner, "--index", index, "sql", "SELECT count(*) AS n FROM frames", "--json").stdout)[0]["n"]
    assert n == 285 + 180
    q = json.loads(run_cli(runner, "--index", index, "query", "red", "--json").stdout)
    assert q["frames_scanned"] == 285 + 180
    ev = json.loads(run_cli(runner, "--index", index, "events", "red", "--video", "*lobby.mp4", "--json").stdout)
    assert ev["videos"][0]["frames"] == 180
    t = pq.read_table(old[0])
    assert "source_pts" not in t.column_names and np.array_equal(source_pts(t), t.column("pts").to_numpy())
