"""Region embeddings end to end (real files, real index, the demo colours model): a small red
object in a wide grey view is found with ``--regions 3`` at the right times and place, where the
whole-frame embedding ranks a faint red cast over the whole frame first."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from vidsearch.demo.synth import Spot, make_spot_video

SPOT = Spot(20.0, 30.0, "red", centre=(0.78, 0.22), area=0.03)  # about 42 x 42 px of 320 x 180
CAST = (45.0, 55.0, "red", 0.07)  # the whole frame a little warmer: what whole-frame CLIP sees best


@pytest.fixture
def wide(tmp_path):
    return make_spot_video(tmp_path / "cam" / "wide.mp4", 70.0, [SPOT], [CAST])


def query(runner, index, *args) -> dict:
    return json.loads(run_cli(runner, "--index", index, "query", *args, "--model", "demo-colours", "--json").stdout)


def contains(box, point) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_regions_find_the_small_object_where_the_whole_frame_does_not(home, colour, wide, runner, tmp_path):
    whole, tiles = tmp_path / "whole", tmp_path / "tiles"
    run_cli(runner, "--index", whole, "ingest", wide.parent, "--model", "demo-colours", "-q")
    out = json.loads(run_cli(runner, "--index", tiles, "ingest", wide.parent, "--model", "demo-colours",
                             "--regions", "3", "-q", "--json").stdout)
    assert out["frames"] == 70  # frames, not region rows

    first = query(runner, whole, "red")["ranges"][0]
    assert not (first["start"] < SPOT.end and first["end"] > SPOT.start)  # the cast, not the object
    assert "box" not in first

    got = query(runner, tiles, "red")
    top = got["ranges"][0]
    assert abs(top["start"] - SPOT.start) <= 1.5 and abs(top["end"] - SPOT.end) <= 1.5
    assert contains(top["box"], SPOT.centre) and top["box"] != [0.0, 0.0, 1.0, 1.0]
    assert got["frames_scanned"] == 70
    table = run_cli(runner, "--index", tiles, "query", "red", "--model", "demo-colours").stdout
    assert "where" in table and "top-right" in table

    # negatives and query by example work on regions too
    assert query(runner, tiles, "red", "--not", "gray")["ranges"][0]["start"] == top["start"]
    from PIL import Image

    Image.new("RGB", (40, 40), (230, 26, 26)).save(tmp_path / "red.png")
    by_image = query(runner, tiles, "--image", tmp_path / "red.png")["ranges"][0]
    assert abs(by_image["start"] - SPOT.start) <= 1.5 and contains(by_image["box"], SPOT.centre)


def test_events_and_classify_with_regions(home, colour, wide, runner, tmp_path):
    index = tmp_path / "tiles"
    run_cli(runner, "--index", index, "ingest", wide.parent, "--model", "demo-colours", "--regions", "3", "-q")
    ev = json.loads(run_cli(runner, "--index", index, "events", "red", "--model", "demo-colours", "--json").stdout)
    events = ev["videos"][0]["events"]
    assert abs(events[0]["start"] - SPOT.start) <= 1.5 and contains(events[0]["box"], SPOT.centre)
    # classify labels the whole frame (region 0): the grey scene stays grey
    cl = json.loads(run_cli(runner, "--index", index, "classify", "-l", "red", "-l", "gray", "--model", "demo-colours",
                            "--json").stdout)
    assert cl["frames_scanned"] == 70
    assert [s["label"] for s in cl["videos"][0]["segments"]] == ["gray"]


def test_changing_regions_replans_only_the_image_chunks_and_old_shards_still_read(home, colour, wide, runner, tmp_path):
    from vidsearch.index.frames import load_frame_index, read_parquet_index
    from vidsearch.index.shards import IndexStore

    index = tmp_path / "idx"
    ingest = lambda *a: json.loads(run_cli(runner, "--index", index, "ingest", wide.parent, "--model", "demo-colours",  # noqa: E731
                                           "--chunk", "30", "-q", "--json", *a).stdout)
    assert ingest()["chunks_done"] == 3
    assert query(runner, index, "red")["ranges"][0]["start"] == CAST[0]  # a whole-frame index (no region columns)
    sql = lambda q: json.loads(run_cli(runner, "--index", index, "sql", q, "--json").stdout)  # noqa: E731
    per_region = "SELECT region, box, count(*) AS n FROM frames GROUP BY ALL ORDER BY region"
    assert sql(per_region) == [{"region": 0, "box": [0.0, 0.0, 1.0, 1.0], "n": 70}]
    assert ingest("--regions", "3")["chunks_done"] == 3
    regions = sql(per_region)  # the SQL view has each row's region and box too
    assert [r["region"] for r in regions] == list(range(10)) and all(r["n"] == 70 for r in regions)
    assert regions[0]["box"] == [0.0, 0.0, 1.0, 1.0] and regions[9]["box"] != regions[0]["box"]
    again = ingest("--regions", "3")
    assert again["chunks_done"] == 0 and again["chunks_skipped"] == 3
    top = query(runner, index, "red")["ranges"][0]
    assert abs(top["start"] - SPOT.start) <= 1.5 and contains(top["box"], SPOT.centre)

    # the search matrix and a straight Parquet read agree, per frame
    store = IndexStore(index)
    fi = load_frame_index(store, colour.model_id)
    pq_index = read_parquet_index(store, colour.model_id)
    assert fi.has_regions and pq_index.has_regions and len(fi) == len(pq_index) == 70
    q = np.zeros(fi.emb.shape[1], np.float32)
    q[0] = 1.0
    a, b = fi.scores(q), pq_index.scores(q)
    assert np.allclose(np.sort(a), np.sort(b), atol=1e-3)
    assert ingest("--regions", "2")["chunks_done"] == 3  # another grid: re-planned, the old one replaced
    assert load_frame_index(store, colour.model_id).emb.shape[0] == 70 * 5


@pytest.mark.regions
def test_filtered_region_queries_read_only_the_selected_frames(home, colour, wide, runner, tmp_path, monkeypatch):
    """``--video`` on a regions index scores only the selected frames' region rows, and finds what
    scoring every frame and then filtering finds (ranges, peaks, boxes)."""
    from vidsearch.index.frames import load_frame_index
    from vidsearch.index.shards import IndexStore
    from vidsearch.query import stages
    from vidsearch.query.engine import search_vector

    make_spot_video(wide.parent / "other.mp4", 40.0, [Spot(8.0, 16.0, "red", centre=(0.25, 0.75), area=0.03)], [])
    index = tmp_path / "tiles"
    run_cli(runner, "--index", index, "ingest", wide.parent, "--model", "demo-colours", "--regions", "3", "-q")
    store = IndexStore(index)
    fi = load_frame_index(store, colour.model_id)
    assert fi.has_regions and len(fi) == 110
    read = []
    frame_run = stages.Scorer.frame_run
    monkeypatch.setattr(stages.Scorer, "frame_run", lambda self, ix, f0, n: (read.append(n), frame_run(self, ix, f0, n))[1])
    red = np.zeros(fi.emb.shape[1], np.float32)
    red[0] = 1.0  # the demo model's "red"
    for glob, frames, spot in (("*other.mp4", 40, (8.0, 16.0, (0.25, 0.75))), ("*wide.mp4", 70, (SPOT.start, SPOT.end, SPOT.centre))):
        ref = search_vector(store, fi, red, label="red", top=5, video_glob=glob, scores=fi.scores(red))
        read.clear()
        got = search_vector(store, fi, red, label="red", top=5, video_glob=glob)
        assert sum(read) == frames == got.frames_scanned == ref.frames_scanned  # only the selected frames
        assert [(r.video_id, r.start, r.end, r.peak_time, r.box) for r in got.ranges] == \
               [(r.video_id, r.start, r.end, r.peak_time, r.box) for r in ref.ranges]
        top = got.ranges[0]
        assert abs(top.start - spot[0]) <= 1.5 and abs(top.end - spot[1]) <= 1.5 and contains(top.box, spot[2])
    out = query(runner, index, "red", "--video", "*other.mp4")  # the command takes the same path
    assert out["frames_scanned"] == 40 and contains(out["ranges"][0]["box"], (0.25, 0.75))


def test_thumbnails_and_evidence_draw_the_box(home, colour, wide, runner, tmp_path):
    from PIL import Image

    index = tmp_path / "tiles"
    run_cli(runner, "--index", index, "ingest", wide.parent, "--model", "demo-colours", "--regions", "3", "-q")
    res = run_cli(runner, "--index", index, "query", "red", "--model", "demo-colours", "-k", "1", "--json",
                  "--thumbnails", tmp_path / "th").stdout
    (tmp_path / "r.json").write_text(res)
    thumb = Image.open(json.loads(res)["ranges"][0]["thumbnail"])
    assert thumb.width > 320 * 1.5 and thumb.height == 180  # the frame, and the crop enlarged beside it
    px = np.asarray(thumb.convert("RGB")).astype(int)
    assert (np.abs(px - [255, 200, 0]).sum(axis=2) < 90).sum() > 200  # the amber box is drawn
    crop = px[:, 330:]
    assert (np.abs(crop - [230, 26, 26]).sum(axis=2) < 90).mean() > 0.1  # the red object, large

    run_cli(runner, "--index", index, "export", tmp_path / "r.json", "-o", tmp_path / "ev", "--no-clips")
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert contains(manifest["ranges"][0]["box"], SPOT.centre)
    assert "hit top-right" in (tmp_path / "ev" / "report.html").read_text()
    from vidsearch.evidence.manifest import verify_manifest

    assert verify_manifest(tmp_path / "ev") == []


def test_a_worker_gets_the_grid_from_the_chunk_spec(home, colour, wide, tmp_path):
    """Distributed ingest: the spec a Celery task carries (JSON) is all a worker needs."""
    import pyarrow.parquet as pq

    from vidsearch.core.plan import ChunkSpec, Sampling, plan_video
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.channels import process_chunk
    from vidsearch.models.contract import sha256_file
    from vidsearch.models.encoder import Encoder

    spec = plan_video(sha256_file(wide), str(wide), 70.0, colour.model_id, Sampling(regions=2), 30.0)[0]
    wire = ChunkSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    store = IndexStore(tmp_path / "idx")
    marker = process_chunk(wire, Encoder.load("demo-colours"), store)
    assert marker["regions"] == 2 and marker["frames"] == 30 and marker["rows"] == 150
    table = pq.read_table(store.shard_path(spec))
    assert table.column("region").to_pylist()[:6] == [0, 1, 2, 3, 4, 0]
    assert table.column("box").to_pylist()[1] == pytest.approx([0.0, 0.0, 2 / 3, 2 / 3])
