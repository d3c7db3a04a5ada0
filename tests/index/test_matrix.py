"""The search matrix (vidsearch/index/matrix.py): a float16 memory-mapped copy of the shards, kept in step with them."""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.index import matrix as M
from vidsearch.models.encoder import Encoder
from vidsearch.ingest.local import LocalBackend
from vidsearch.ingest.pipeline import ingest
from vidsearch.ingest.plan import IngestOptions
from vidsearch.core.plan import ChunkSpec
from vidsearch.index.frames import load_frame_index, open_matrix, read_parquet_index
from vidsearch.query.engine import text_query
from vidsearch.index.shards import IndexStore


def do_ingest(store: IndexStore, info, root: Path):
    rep = ingest([root], store, info, LocalBackend(Encoder(info)), IngestOptions(chunk_s=10))
    assert rep.chunks_failed == 0
    return rep


def by_video(index) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for code, rows in index.rows_by_video().items():
        out[index.videos[code]] = (np.asarray(index.pts[rows]), np.asarray(index.emb[rows], dtype=np.float32))
    return out


def assert_matches_parquet(store: IndexStore, model_id: str, index=None) -> None:
    """The cached index holds exactly the rows of the done shards (float16-rounded), per video in time order."""
    index = index if index is not None else load_frame_index(store, model_id)
    ref = by_video(read_parquet_index(store, model_id))
    got = by_video(index)
    assert sorted(got) == sorted(ref)
    for vid, (pts, emb) in ref.items():
        order = np.argsort(pts, kind="stable")
        np.testing.assert_array_equal(got[vid][0], pts[order])
        np.testing.assert_allclose(got[vid][1], emb[order], atol=1e-3, rtol=0)
    assert len(index) == sum(len(p) for p, _ in ref.values())


def a_spec(store: IndexStore, model_id: str, video_name: str | None = None) -> tuple[ChunkSpec, dict]:
    """A done chunk (of the video whose path ends with ``video_name``) and its marker."""
    for kind, rec in sorted(store.iter_records(model_id), key=lambda kr: (kr[1]["path"], kr[1]["start"])):
        if kind == "done" and (video_name is None or rec["path"].endswith(video_name)):
            return ChunkSpec.from_dict(rec), rec
    raise AssertionError("no done chunk")


@pytest.fixture
def indexed(home, colour, archive):
    """The archive without evening.mp4, ingested with the colour model: (store, model, archive, held-back file)."""
    held = archive.parent / "held" / "evening.mp4"
    held.parent.mkdir()
    shutil.move(archive / "cam-b" / "evening.mp4", held)
    store = IndexStore(home / "index")
    do_ingest(store, colour, archive)
    return store, colour, archive, held


def test_append_then_rebuild_when_shards_change(indexed):
    store, info, archive, held = indexed
    mid = info.model_id
    cache = M.MatrixCache(store, mid)
    first = cache.refresh()  # ingest already built it
    assert cache.last_action in ("fresh", "settle") and first["gen"] == 1 and first["dtype"] == "float16"
    assert first["rows"] == 40 + 30 and len(first["videos"]) == 2
    index = load_frame_index(store, mid)
    assert isinstance(index.emb, np.memmap) and index.emb.dtype == np.float16
    assert_matches_parquet(store, mid, index)

    # a new video: its rows are appended to the same files
    emb_file = cache.dir / "emb-1.f16"
    inode = emb_file.stat().st_ino
    shutil.move(held, archive / "cam-b" / "evening.mp4")
    do_ingest(store, info, archive)
    m = cache.read_manifest()
    assert m["gen"] == 1 and m["rows"] == 95 and len(m["videos"]) == 3
    assert emb_file.stat().st_ino == inode
    assert cache.refresh() and cache.last_action in ("fresh", "settle")  # nothing new
    assert_matches_parquet(store, mid)

    # a shard rewritten with other values: full rebuild into a new generation
    spec, rec = a_spec(store, mid, "noon.mp4")
    old = load_frame_index(store, mid)  # mapped, not read yet
    old_values = by_video(read_parquet_index(store, mid))
    store.write_shard(spec, np.arange(spec.start, spec.end), -np.ones((int(spec.end - spec.start), info.dim), np.float32) / np.sqrt(info.dim))
    cache.refresh()
    assert cache.last_action == "rebuild" and cache.read_manifest()["gen"] == 2
    assert not emb_file.exists()  # the old generation is gone (a reader that mapped it keeps its inode)
    # a reader that mapped the old generation still reads it
    for vid, (pts, emb) in by_video(old).items():
        np.testing.assert_allclose(emb, old_values[vid][1], atol=1e-3)
    index = load_frame_index(store, mid)
    assert_matches_parquet(store, mid, index)
    assert np.isclose(np.asarray(index.emb, np.float32), -1 / np.sqrt(info.dim), atol=1e-3).all(axis=1).sum() == 10

    # a shard removed: rebuilt without its rows
    store.remove_chunk(spec)
    cache.refresh()
    assert cache.last_action == "rebuild" and cache.read_manifest()["rows"] == 85
    assert_matches_parquet(store, mid)

    # a whole video directory removed
    shutil.rmtree(store.chunk_dir(a_spec(store, mid, "evening.mp4")[0]))
    cache.refresh()
    assert cache.last_action == "rebuild" and cache.read_manifest()["rows"] == 60
    assert_matches_parquet(store, mid)


def test_a_change_in_the_same_mtime_tick_is_not_missed(indexed):
    """A directory modified right before a scan is recorded as unknown and listed again."""
    store, info, _, _ = indexed
    mid = info.model_id
    cache = M.MatrixCache(store, mid)
    shutil.rmtree(cache.dir)
    m = cache.refresh()  # just after ingest: every video directory is "racy"
    assert set(m["dirs"].values()) == {None}
    spec, rec = a_spec(store, mid, "noon.mp4")
    d = store.chunk_dir(spec)
    before = d.stat().st_mtime_ns
    new = ChunkSpec.from_dict({**spec.to_dict(), "start": 30.0, "end": 31.0})
    store.write_shard(new, np.array([30.0]), np.ones((1, info.dim), np.float32) / np.sqrt(info.dim))
    os.utime(d, ns=(before, before))  # as if written within the same clock tick as the scan
    assert_matches_parquet(store, mid)
    assert cache.read_manifest()["rows"] == 71


def test_settled_directories_skip_the_listing(indexed, monkeypatch):
    store, info, _, _ = indexed
    mid = info.model_id
    cache = M.MatrixCache(store, mid)
    shutil.rmtree(cache.dir)
    monkeypatch.setattr(M, "RACY_NS", -10**12)  # pretend the scan ran long after the last write
    m = cache.refresh()
    assert None not in m["dirs"].values()
    listed = []
    monkeypatch.setattr(M.MatrixCache, "_list_markers", lambda self, d: listed.append(d) or {})
    assert M.MatrixCache(store, mid).refresh() == m and listed == []


def test_leftovers_of_a_crashed_append_are_dropped(indexed):
    store, info, archive, held = indexed
    mid = info.model_id
    cache = M.MatrixCache(store, mid)
    m = cache.refresh()
    for name in ("emb-1.f16", "pts-1.f64", "codes-1.i32"):
        with open(cache.dir / name, "ab") as f:
            f.write(b"\x7f" * 1000)  # half-written rows that never reached the manifest
    assert_matches_parquet(store, mid)  # readers map exactly the committed rows
    shutil.move(held, archive / "cam-b" / "evening.mp4")
    do_ingest(store, info, archive)
    assert cache.read_manifest()["gen"] == m["gen"]
    assert (cache.dir / "pts-1.f64").stat().st_size == 95 * 8
    assert_matches_parquet(store, mid)


def test_concurrent_first_queries_build_once(indexed):
    store, info, _, _ = indexed
    mid = info.model_id
    shutil.rmtree(M.matrix_dir(store, mid))
    results, errors = [], []

    def worker():
        try:
            results.append(by_video(open_matrix(M.MatrixCache(store, mid))))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    assert M.MatrixCache(store, mid).read_manifest()["gen"] == 1  # built once; the others found it fresh
    ref = by_video(read_parquet_index(store, mid))
    for r in results:
        assert sorted(r) == sorted(ref)


def test_float16_ranking_matches_float32(home, colour, archive, monkeypatch):
    store = IndexStore(home / "index")
    do_ingest(store, colour, archive)
    enc = Encoder(colour)

    def ranked(index):
        out = {}
        for q in ("red", "blue", "green", "crimson", "something blue"):
            res = text_query(store, enc, [q], index=index, top=50)
            out[q] = [(r.video_id, r.start, r.end, round(r.score, 3)) for r in res.ranges]
        return out

    f16 = load_frame_index(store, colour.model_id)
    assert f16.emb.dtype == np.float16
    monkeypatch.setenv("VIDSEARCH_MATRIX_DTYPE", "float32")
    f32 = load_frame_index(store, colour.model_id)  # the dtype changed: rebuilt as float32
    assert f32.emb.dtype == np.float32 and M.MatrixCache(store, colour.model_id).read_manifest()["dtype"] == "float32"
    parquet = read_parquet_index(store, colour.model_id)
    a, b, c = ranked(f16), ranked(f32), ranked(parquet)
    assert a == b == c
    assert len(a["red"]) == 2 and len(a["blue"]) == 2 and len(a["green"]) == 1
    q = enc.encode_texts(["red"])[0]
    np.testing.assert_allclose(f16.scores(q), parquet.scores(q), atol=2e-3)
    monkeypatch.setenv("VIDSEARCH_MATRIX_DTYPE", "float64")
    with pytest.raises(Exception, match="VIDSEARCH_MATRIX_DTYPE"):
        load_frame_index(store, colour.model_id)


def test_query_with_the_cache_deleted_rebuilds_it(home, colour, archive, runner):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    mdir = home / "index" / "matrix"
    assert (mdir / M.model_slug(colour.model_id) / "manifest.json").is_file()  # ingest built it
    first = json.loads(run_cli(runner, "query", "red", "--json").stdout)["ranges"]
    shutil.rmtree(mdir)
    again = json.loads(run_cli(runner, "query", "red", "--json").stdout)["ranges"]
    assert again == first and len(first) == 2
    assert (mdir / M.model_slug(colour.model_id) / "manifest.json").is_file()
    # a corrupt manifest is rebuilt too
    (mdir / M.model_slug(colour.model_id) / "manifest.json").write_text("{not json")
    assert json.loads(run_cli(runner, "query", "red", "--json").stdout)["ranges"] == first


def test_unwritable_cache_falls_back_to_parquet(indexed, monkeypatch):
    store, info, _, _ = indexed

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self.dir))

    monkeypatch.setattr(M.MatrixCache, "refresh", deny)
    index = load_frame_index(store, info.model_id)
    assert index.emb.dtype == np.float32 and not isinstance(index.emb, np.memmap)
    assert_matches_parquet(store, info.model_id, index)


def test_empty_and_missing_model(home, tiny):
    store = IndexStore(home / "index")
    index = load_frame_index(store, tiny.model_id)
    assert len(index) == 0 and index.videos == []
    assert not store.root.exists()  # a query of an empty index writes nothing
    cache = M.MatrixCache(store, tiny.model_id)
    cache.base.mkdir(parents=True)  # the model's shard directory exists, but holds no shard yet
    assert len(load_frame_index(store, tiny.model_id)) == 0 and cache.read_manifest()["rows"] == 0


@pytest.mark.parametrize("fallback", [False, True])
def test_matvec_matches_float64(monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(M, "_session", False)  # as if ONNX Runtime could not build the graph
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((3 * M.BLOCK_ROWS + 17, 48)).astype(np.float16)
    q = rng.standard_normal(48).astype(np.float32)
    want = emb.astype(np.float64) @ q.astype(np.float64)
    got = M.matvec(emb, q)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(M.matvec(emb.astype(np.float32), q), want, rtol=0, atol=1e-4)
    labels = rng.standard_normal((48, 3)).astype(np.float32)  # several prompts at once
    got = M.matmul(emb, labels)
    assert got.shape == (len(emb), 3)
    np.testing.assert_allclose(got, emb.astype(np.float64) @ labels.astype(np.float64), rtol=0, atol=1e-4)
    assert M.matvec(np.zeros((0, 48), np.float16), q).shape == (0,)


def test_embedded_onnx_graph_is_what_onnx_helper_builds():
    from onnx import TensorProto, checker, helper

    nodes = [helper.make_node("Cast", ["E"], ["E32"], to=TensorProto.FLOAT), helper.make_node("MatMul", ["E32", "q"], ["s"])]
    graph = helper.make_graph(
        nodes, "f16matmul",
        [helper.make_tensor_value_info("E", TensorProto.FLOAT16, ["n", "d"]),
         helper.make_tensor_value_info("q", TensorProto.FLOAT, ["d", "k"])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", "k"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="vidsearch.matrix")
    model.ir_version = 7
    checker.check_model(model)
    assert model.SerializeToString() == M.F16_MATMUL_ONNX
