"""The search paths of a query: full scan, fused flat scan, and the two-stage path of big indexes.

The index is small (a few thousand frames) but shaped like footage (scenes, drift, a camera
look) with targets planted near known query vectors; the first stage keeps only 64 candidates
so that it, not its size, decides what is found.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.core.plan import ChunkSpec, Sampling, plan_chunks
from vidsearch.demo.models import install_model, tiny_random_model
from vidsearch.index import coarse
from vidsearch.index.catalog import Catalog
from vidsearch.index.frames import load_frame_index
from vidsearch.index.matrix import MatrixCache, update_coarse
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import sync_catalog
from vidsearch.query import stages
from vidsearch.query.engine import search_vector

pytestmark = pytest.mark.scale

DIM, PER_VIDEO, VIDEOS = 64, 600, 6


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def footage(rng, n, things, mean, plants=()):
    cam = unit(rng.standard_normal(DIM))
    state = things[np.repeat(rng.integers(0, len(things), size=n // 60 + 1), 60)[:n]]
    c = np.cumsum(rng.standard_normal((n + 5, DIM)), axis=0)
    emb = unit(0.9 * mean + 0.7 * cam + 0.8 * state + 0.15 * (c[5:] - c[:-5]))
    for q, s, length, strength in plants:
        emb[s : s + length] = unit(strength * q + (1 - strength) * emb[s : s + length])
    return emb


def write_video(store, model_id, vid, emb, start_s=0.0):
    for s, e in plan_chunks(float(len(emb)), 60.0):
        spec = ChunkSpec(vid, f"/cams/{vid[:6]}.mp4", start_s + s, start_s + e, Sampling("fps", 1.0).key, model_id, 60.0)
        rows = np.arange(int(s), int(e))
        store.write_shard(spec, (start_s + rows).astype(np.float64), emb[rows])


@pytest.fixture
def world(home):
    """An index of 6 ten-minute videos; query 0 is planted in videos 1 and 4, query 1 in video 2;
    query 2 is a common scene (many hits). Video v is /cams/cam<v>.mp4, recorded from 08:00 + 5 v
    minutes (video 5 carries no creation time)."""
    info = install_model(lambda d, name: tiny_random_model(d, dim=DIM, name=name), "tiny-64", home / "models")
    rng = np.random.default_rng(3)
    mean, things = unit(rng.standard_normal(DIM)), unit(rng.standard_normal((12, DIM)))
    qs = [unit(rng.standard_normal(DIM)), unit(rng.standard_normal(DIM)), unit(things[3] + 0.3 * mean)]
    plants = {1: [(qs[0], 100, 20, 0.8)], 4: [(qs[0], 400, 12, 0.7)], 2: [(qs[1], 250, 30, 0.8)]}
    store = IndexStore(home / "index")
    with Catalog(store) as cat:
        cat.register_model(info.model_id, info.name, info.dim, info.to_json())
        for v in range(VIDEOS):
            created = f"2026-11-02T08:{5 * v:02d}:00Z" if v < 5 else None
            cat.upsert_video(f"{v:064x}", {"path": f"/cams/cam{v}.mp4", "duration": float(PER_VIDEO),
                                           "width": 64, "height": 64, "fps": 1.0, "codec": "h264", "creation_time": created}, 1)
    for v in range(VIDEOS):
        write_video(store, info.model_id, f"{v:064x}", footage(rng, PER_VIDEO, things, mean, plants.get(v, ())))
    with Catalog(store) as cat:
        sync_catalog(cat)
    return store, info, qs, (rng, things, mean)


@pytest.fixture
def small_stages(monkeypatch):
    monkeypatch.setattr(stages, "CANDIDATES", 64)
    monkeypatch.setattr(stages, "COARSE_CANDIDATES", 64)
    monkeypatch.setattr(stages, "SAMPLE_ROWS", 256)
    monkeypatch.setattr(stages, "VIDEO_SAMPLE_ROWS", 64)


def ranges_of(result):
    return [(r.video_id, r.start, r.end, r.peak_time, round(r.peak_score, 4), r.frames) for r in result.ranges]


def weak_of(result):
    return [(r.video_id, r.start, r.weak) for r in result.ranges]


def build_coarse(store, model_id):
    cache = MatrixCache(store, model_id)
    return update_coarse(cache, cache.refresh(), min_rows=0)


def test_flat_path_finds_the_ranges_of_the_full_scan(world, small_stages):
    store, info, qs, _ = world
    index = load_frame_index(store, info.model_id)
    assert index.flat_scan() is not None
    for q in qs:
        full = search_vector(store, index, q, label="q", top=20, search="full")
        flat = search_vector(store, index, q, label="q", top=20, search="flat")
        assert flat.search == "flat" and full.search == "full"
        assert ranges_of(flat) == ranges_of(full)  # same threshold (exact median below the sample size), same ranges
        assert weak_of(flat) == weak_of(full) and all(w is not None for *_, w in weak_of(flat))
    planted = search_vector(store, index, qs[0], label="q", top=2, search="flat").ranges
    assert {(r.video_id[-1], int(r.start)) for r in planted} == {("1", 100), ("4", 400)}


def test_flat_path_takes_every_hit_when_there_are_more_than_candidates(world, small_stages, monkeypatch):
    store, info, qs, _ = world
    index = load_frame_index(store, info.model_id)
    common = qs[2]  # a scene many frames show
    full = search_vector(store, index, common, label="q", top=None, search="full")
    assert sum(r.frames for r in full.ranges) > 64
    flat = search_vector(store, index, common, label="q", top=None, search="flat")
    assert ranges_of(flat) == ranges_of(full) and flat.candidates > 64


def test_two_stage_finds_the_planted_targets_and_rescores_exactly(world, small_stages):
    store, info, qs, _ = world
    assert build_coarse(store, info.model_id) == "build"
    index = load_frame_index(store, info.model_id)
    c = index.coarse_stage(min_rows=0)
    assert c is not None and c.rows == len(index)
    for q in qs[:2]:
        full = search_vector(store, index, q, label="q", top=3, search="full")
        two = search_vector(store, index, q, label="q", top=3, search="two-stage")
        assert two.search == "two-stage" and two.candidates >= 64
        # the planted ranges come back whole: same video, start, end, peak (the threshold is within the sample's error)
        assert [x[:4] for x in ranges_of(two)] == [x[:4] for x in ranges_of(full)]
        assert abs(two.threshold - full.threshold) < 0.02


def test_staged_paths_say_which_ranges_are_weak(world, small_stages):
    """The weak rule holds on every path: a planted target stands out, a query nothing matches
    (a random direction) and a scene every camera shows do not; the staged paths estimate the
    baselines from samples (the archive's, and a spread of each ranked video's rows)."""
    store, info, qs, _ = world
    build_coarse(store, info.model_id)
    index = load_frame_index(store, info.model_id)
    nothing = unit(np.random.default_rng(99).standard_normal(DIM))
    for q, weak in ((qs[0], False), (qs[1], False), (qs[2], True), (nothing, True)):
        for path in ("full", "flat", "two-stage"):
            got = search_vector(store, index, q, label="q", top=5, search=path)
            assert got.ranges and all(r.weak is weak for r in got.ranges), (path, weak_of(got))
            assert all(("weak" in r.to_dict()) for r in got.ranges)
    for kw in FILTERS:  # the selection's rows only
        full, flat = (search_vector(store, index, qs[0], label="q", top=5, search=p, **kw) for p in ("full", "flat"))
        assert weak_of(flat) == weak_of(full), kw


def test_two_stage_scans_rows_appended_since_the_coarse_stage_exactly(world, small_stages):
    store, info, qs, (rng, things, mean) = world
    build_coarse(store, info.model_id)
    target = unit(rng.standard_normal(DIM))
    write_video(store, info.model_id, "e" * 64, footage(rng, PER_VIDEO, things, mean, [(target, 300, 15, 0.9)]))
    with Catalog(store) as cat:
        cat.upsert_video("e" * 64, {"path": "/cams/new.mp4", "duration": float(PER_VIDEO), "width": 64, "height": 64,
                                    "fps": 1.0, "codec": "h264", "creation_time": None}, 1)
        sync_catalog(cat)
    index = load_frame_index(store, info.model_id)  # the matrix appended the new video; the coarse stage did not
    assert index.coarse_stage(min_rows=0).rows == VIDEOS * PER_VIDEO < len(index)
    r = search_vector(store, index, target, label="q", top=1, search="two-stage")
    assert (r.ranges[0].video_id, r.ranges[0].start, r.ranges[0].path) == ("e" * 64, 300.0, "/cams/new.mp4")
    assert build_coarse(store, info.model_id) == "append"
    m = coarse.read_manifest(coarse.coarse_dir(MatrixCache(store, info.model_id).dir))
    assert [p[1:] for p in m["parts"]] == [[0, VIDEOS * PER_VIDEO], [VIDEOS * PER_VIDEO, len(index)]]
    index = load_frame_index(store, info.model_id)
    assert index.coarse_stage(min_rows=0).rows == len(index)
    assert search_vector(store, index, target, label="q", top=1, search="two-stage").ranges[0].start == 300.0


def test_auto_path_switches_and_json_says_which(world, small_stages, monkeypatch, runner):
    store, info, qs, _ = world
    args = ["--index", store.root, "query", "anything", "--json", "--model", "tiny-64"]
    monkeypatch.setattr(stages, "SAMPLE_ROWS", 16_384)
    out = json.loads(run_cli(runner, *args).stdout)
    assert out["search"] == "full"  # a small index: every frame scored
    monkeypatch.setattr(stages, "SAMPLE_ROWS", 256)
    monkeypatch.setattr(stages, "VIDEO_SAMPLE_ROWS", 64)
    assert json.loads(run_cli(runner, *args).stdout)["search"] == "flat"  # bigger: the fused scan
    monkeypatch.setattr(coarse, "MIN_ROWS", 1000)
    build_coarse(store, info.model_id)
    out2 = json.loads(run_cli(runner, *args).stdout)
    assert out2["search"] == "two-stage" and out2["candidates"] >= 64 and isinstance(out2["complete"], bool)
    assert set(out) == set(out2) and {"ranges", "threshold", "frames_scanned"} <= set(out)


def test_coarse_stage_follows_a_matrix_rebuild(world, small_stages):
    store, info, qs, _ = world
    build_coarse(store, info.model_id)
    cache = MatrixCache(store, info.model_id)
    gen = cache.read_manifest()["gen"]
    vid_dir = next((store.shards_root / cache.base.name).glob("*/*"))
    for p in list(vid_dir.glob("*.done"))[:1]:
        p.unlink()  # a removed chunk: the matrix is rebuilt as a new generation
    manifest = cache.refresh()
    assert manifest["gen"] == gen + 1
    index = load_frame_index(store, info.model_id)
    assert index.coarse_stage(min_rows=0) is None  # stale: never used for another generation
    assert build_coarse(store, info.model_id) == "build"
    assert load_frame_index(store, info.model_id).coarse_stage(min_rows=0).rows == len(index)


# -- filters, negative prompts, and what "complete" claims -----------------------------------------
FILTERS = [dict(video_glob="*cam1.mp4"), dict(video_glob="*cam[1245].mp4"),
           dict(after="2026-11-02T08:07:30Z"), dict(after="2026-11-02T08:03:00Z", before="2026-11-02T08:24:00Z"),
           dict(video_glob="*cam4.mp4", after="2026-11-02T08:26:00Z")]


def reference(store, index, q, negatives=(), **kw):
    """The plain path: every frame scored (ONNX Runtime), then the filters applied to the scores."""
    from vidsearch.core.clip import contrast_scores

    scores = contrast_scores(index.scores(q), [index.scores(n) for n in negatives])
    return search_vector(store, index, q, label="q", scores=scores, **kw)


@pytest.fixture
def rows_read(monkeypatch):
    """Every matrix row the query scores, as (first, count) per read."""
    reads = []
    dense, rows = stages.Scorer.dense, stages.Scorer.rows
    monkeypatch.setattr(stages.Scorer, "dense", lambda self, emb: (reads.append(len(emb)), dense(self, emb))[1])
    monkeypatch.setattr(stages.Scorer, "rows", lambda self, index, r: (reads.append(len(r)), rows(self, index, r))[1])
    return reads


def test_filtered_queries_score_only_the_selected_rows_and_match_the_plain_path(world, small_stages, rows_read):
    store, info, qs, _ = world
    index = load_frame_index(store, info.model_id)
    for kw in FILTERS:
        for q in qs:
            ref = reference(store, index, q, top=20, **kw)
            rows_read.clear()
            got = search_vector(store, index, q, label="q", top=20, **kw)
            assert ranges_of(got) == ranges_of(ref), kw
            assert (got.frames_scanned, got.skipped_no_time) == (ref.frames_scanned, ref.skipped_no_time), kw
            if 4 * ref.frames_scanned <= len(index):  # a narrow filter: its rows only, read once
                assert got.search == "full" and sum(rows_read) == ref.frames_scanned < len(index), kw
            else:
                assert got.search == "flat" and sum(rows_read) < ref.frames_scanned, kw
    planted = search_vector(store, index, qs[0], label="q", top=5, video_glob="*cam4.mp4").ranges
    assert [(r.video_id[-1], int(r.start)) for r in planted][:1] == [("4", 400)]
    late = search_vector(store, index, qs[0], label="q", top=5, after="2026-11-02T08:28:00Z").ranges
    assert all(not (r.video_id[-1] == "1") for r in late)  # video 1 ended at 08:15


def test_filtered_staged_paths_keep_to_the_selection(world, small_stages):
    from vidsearch.query.engine import select_frames

    store, info, qs, _ = world
    build_coarse(store, info.model_id)
    index = load_frame_index(store, info.model_id)
    for kw in FILTERS:
        sel = select_frames(store, index, runs=True, **kw).rows
        for q in qs[:2]:
            ref = reference(store, index, q, top=5, **kw)
            flat = search_vector(store, index, q, label="q", top=5, search="flat", **kw)
            assert ranges_of(flat) == ranges_of(ref) and flat.complete, kw  # exact: the same ranges
            two = search_vector(store, index, q, label="q", top=5, search="two-stage", **kw)
            assert two.frames_scanned == ref.frames_scanned == len(sel) and not two.complete
            for r in two.ranges:  # every range inside the selection (its peak frame a selected row)
                code = index.videos.index(r.video_id)
                rows = np.concatenate([np.arange(a, a + n) for a, n in sel.runs[code]])
                assert np.isclose(index.pts[rows], r.peak_time).any(), kw
        # the planted target, wherever the filter keeps it (the quantiser is approximate: noise may differ)
        ref, two = (search_vector(store, index, qs[0], label="q", top=1, search=p, **kw) for p in ("full", "two-stage"))
        assert ranges_of(two)[:1] == ranges_of(ref)[:1] or ref.ranges[0].peak_score < 0.3, kw


def test_negative_prompts_take_the_staged_paths(world, small_stages, rows_read):
    store, info, qs, (rng, things, mean) = world
    build_coarse(store, info.model_id)
    index = load_frame_index(store, info.model_id)
    negs = [unit(things[3] + 0.3 * mean), qs[1]]
    for q in qs:
        ref = reference(store, index, q, negatives=negs, top=10)
        rows_read.clear()
        flat = search_vector(store, index, q, label="q", top=10, negatives=negs)
        assert flat.search == "flat" and ranges_of(flat) == ranges_of(ref)
        assert sum(rows_read) < len(index)  # candidates, the median's spread and the islands only
        two = search_vector(store, index, q, label="q", top=3, negatives=negs, search="two-stage")
        # the same peaks (the median comes from the coarse stage's own sample: edges may move by a frame)
        assert [(x[0], x[3]) for x in ranges_of(two)] == [(x[0], x[3]) for x in ranges_of(ref)[:3]]
        assert abs(two.threshold - ref.threshold) < 0.02
    # the negative prompt matters: the common scene steered away from itself leaves no range of it
    assert ranges_of(reference(store, index, qs[2], top=10)) != ranges_of(reference(store, index, qs[2], negatives=negs, top=10))


def test_complete_claims_only_what_is_proven(world, small_stages, monkeypatch):
    store, info, qs, _ = world
    build_coarse(store, info.model_id)
    index = load_frame_index(store, info.model_id)
    flat = search_vector(store, index, qs[0], label="q", top=3, search="flat")
    assert (flat.complete, flat.capped) == (True, False)  # the flat scan's k-th score bounds every row left out
    two = search_vector(store, index, qs[0], label="q", top=3, search="two-stage")
    assert (two.complete, two.capped) == (False, False)  # the quantiser gives no bound: settled, not proven
    assert search_vector(store, index, qs[0], label="q", top=3, search="full").complete
    monkeypatch.setattr(stages, "COARSE_CANDIDATES", len(index))  # every row a candidate: proven
    assert search_vector(store, index, qs[0], label="q", top=3, search="two-stage").complete
    monkeypatch.setattr(stages, "COARSE_CANDIDATES", 16)
    monkeypatch.setattr(stages, "MAX_COARSE_CANDIDATES", 16)
    capped = search_vector(store, index, qs[2], label="q", top=None, search="two-stage")  # thousands of hits
    assert (capped.complete, capped.capped, capped.candidates) == (False, True, 16)
