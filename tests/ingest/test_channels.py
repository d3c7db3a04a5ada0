"""The channel interface: the registry, catalog views built from declarations, and a third channel
that runs through ingest, the worker's unit of work, the catalog and `status` with no change to them."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from conftest import ARCHIVE, run_cli
from vidsearch.core.plan import ChunkSpec, Sampling, plan_video
from vidsearch.errors import UserError
from vidsearch.index.catalog import Catalog, duck_type
from vidsearch.index.channel import ShardView
from vidsearch.index.shards import IndexStore, shard_schema
from vidsearch.ingest import channels
from vidsearch.ingest.embed import IMAGE
from vidsearch.ingest.local import LocalBackend
from vidsearch.ingest.pipeline import ingest
from vidsearch.ingest.plan import IngestOptions
from vidsearch.ingest.status import index_status
from vidsearch.models.encoder import Encoder
from vidsearch.ocr.channel import OCR, OCR_CHANNEL

FAKE_ID = "loudness:rms-v1@0123456789ab"


class LoudnessChannel:
    """A made-up third channel: one row per 5 s of video with a number and a 2-vector; no model."""

    name = "loudness"
    report_key = "loudness_frames"
    needs_encoder = False

    def __init__(self):
        self.refreshed: list[str] = []
        self.processed: list[str] = []

    def owns(self, model_id: str) -> bool:
        return model_id.startswith("loudness:")

    def model_id(self, model=None) -> str:
        return FAKE_ID

    def plan(self, video_id, path, duration, model_id, sampling, chunk_s):
        return plan_video(video_id, path, duration, model_id, Sampling("fps", 0.2), chunk_s)

    def start(self, spec, encoder, batch_size):
        return None

    def shard_schema(self, dim=None):
        return shard_schema(pa.field("rms", pa.float32(), nullable=False),
                            pa.field("band", pa.list_(pa.float32(), 2), nullable=False))

    def process(self, spec, store, encoder=None, batch_size=32, started=None):
        assert encoder is None  # needs_encoder is False: backends and workers pass none
        self.processed.append(spec.chunk_id)
        done = store.done_marker(spec)
        if done is not None:
            return {**done, "skipped": True}
        pts = Sampling.parse(spec.sampling).timestamps(spec.start, spec.end)
        n = len(pts)
        table = pa.Table.from_arrays([
            pa.array([spec.video_id] * n, pa.string()), pa.array([spec.path] * n, pa.string()),
            pa.array([spec.chunk_id] * n, pa.string()), pa.array(pts, pa.float64()),
            pa.array([spec.model_id] * n, pa.string()), pa.array([t / 100 for t in pts], pa.float32()),
            pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(pts, 2), pa.float32()), 2),
        ], schema=self.shard_schema())
        return store.write_table_shard(spec, table, extra={"frames": n})

    def views(self, models):
        return [ShardView("frame_loudness", FAKE_ID, self.shard_schema(),
                          ("video_id", "pts", "rms", "band", "pair", "model_id"), (("pair", ("rms", "rms")),))]

    def refresh(self, store, model_id):
        self.refreshed.append(model_id)


@pytest.fixture
def loudness():
    channel = LoudnessChannel()
    channels.register(channel)
    try:
        yield channel
    finally:
        channels.unregister(channel.name)


def _rows(home, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "index" / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_registry_finds_each_chunks_channel():
    assert channels.channel_for("demo-colours@abc") is IMAGE
    assert channels.channel_for(OCR_CHANNEL) is OCR
    assert channels.by_name("ocr") is OCR and channels.by_name("image") is IMAGE
    with pytest.raises(UserError, match="no channel 'audio': the channels are ocr, image"):
        channels.by_name("audio")
    assert channels.report_keys() == ["frames", "ocr_frames"]

    class Model:
        model_id = "m@1"

    assert [(c.name, m) for c, m in channels.active(Model(), ["ocr", "image", "ocr"])] == [("image", "m@1"), ("ocr", OCR_CHANNEL)]
    with pytest.raises(ValueError):
        channels.unregister("image")


def test_registered_channel_owns_its_ids_and_leaves_again(loudness):
    assert channels.channel_for(FAKE_ID) is loudness
    assert channels.CHANNELS[-1] is IMAGE  # the catch-all stays last
    assert channels.report_keys() == ["frames", "ocr_frames", "loudness_frames"]
    channels.register(loudness)  # again: replaced, not doubled
    assert [c.name for c in channels.CHANNELS].count("loudness") == 1
    channels.unregister("loudness")
    assert channels.channel_for(FAKE_ID) is IMAGE


def test_a_third_channel_runs_through_ingest_worker_catalog_and_status(home, colour, archive, runner, loudness):
    store = IndexStore(home / "index")
    opts = IngestOptions(chunk_s=10, channels=("loudness",))
    rep = ingest([archive], store, colour, LocalBackend(Encoder(colour), batch_size=8), opts)
    secs = sum(d for d, _ in ARCHIVE.values())
    image_chunks = sum(-(-int(d) // 10) for d, _ in ARCHIVE.values())
    assert rep.chunks_failed == 0 and rep.chunks_done == 2 * image_chunks
    assert rep.seconds_indexed == pytest.approx(secs)  # its chunks do not count twice
    d = rep.to_dict()
    assert d["loudness_frames"] == sum(len(range(0, int(dur), 5)) for dur, _ in ARCHIVE.values())
    assert list(d)[list(d).index("frames"):][:3] == ["frames", "ocr_frames", "loudness_frames"]
    assert d["ocr_frames"] == 0 and d["frames"] > 0
    assert loudness.refreshed == [FAKE_ID]  # its query-side copy was brought up to date

    # the catalog view it declared, over its shards, with the packed array
    rows = _rows(home, "SELECT pts, rms, band, pair FROM frame_loudness WHERE pts = 5 ORDER BY video_id")
    assert len(rows) == 3 and all(r[1] == pytest.approx(0.05) and tuple(r[2]) == (5.0, 5.0) and list(r[3]) == pytest.approx([0.05, 0.05]) for r in rows)
    assert _rows(home, "SELECT data_type FROM information_schema.columns WHERE table_name = 'frame_loudness' AND column_name = 'band'") == [("FLOAT[2]",)]
    assert not any("loudness" in m for (m,) in _rows(home, "SELECT model_id FROM models"))

    status = index_status(store)
    assert status["loudness_frames"] == d["loudness_frames"] and status["frames"] == d["frames"]
    assert status["chunks"] == {"done": 2 * image_chunks, "pending": 0, "failed": 0, "partial": 0}
    assert json.loads(run_cli(runner, "status", "--json").stdout)["loudness_frames"] == d["loudness_frames"]
    assert {s for (s,) in _rows(home, "SELECT status FROM files")} == {"indexed"}

    # a re-run skips its done chunks; the worker's unit of work runs it without a model
    again = ingest([archive], store, colour, LocalBackend(Encoder(colour)), opts)
    assert (again.chunks_done, again.chunks_skipped) == (0, 2 * image_chunks)
    spec = next(ChunkSpec.from_dict(r) for k, r in store.iter_records(FAKE_ID) if k == "done")
    assert channels.process_chunk(spec, object(), store)["skipped"] is True


def test_channel_views_are_empty_until_shards_exist(home, colour, archive, loudness):
    store = IndexStore(home / "index")
    ingest([archive], store, colour, LocalBackend(Encoder(colour)), IngestOptions(chunk_s=40))
    assert _rows(home, "SELECT count(*) FROM frame_loudness") == [(0,)]
    assert _rows(home, "SELECT count(*) FROM frame_text") == [(0,)]
    types = dict(_rows(home, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'frame_text'"))
    assert types == {
        "video_id": "VARCHAR", "path": "VARCHAR", "pts": "DOUBLE", "text": "VARCHAR", "confidence": "FLOAT",
        "x0": "FLOAT", "y0": "FLOAT", "x1": "FLOAT", "y1": "FLOAT", "box": "FLOAT[4]", "chunk_id": "VARCHAR",
        "model_id": "VARCHAR", "text_embedding": "FLOAT[384]",
    }
    cols = [c for (c,) in _rows(home, "SELECT column_name FROM information_schema.columns WHERE table_name = 'frame_text' ORDER BY ordinal_position")]
    assert cols == list(types)


def test_image_views_follow_the_most_recently_used_model(home, colour, tiny, archive):
    store = IndexStore(home / "index")
    with Catalog(store) as cat:
        channels.sync_catalog(cat)
    empty = dict(_rows(home, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'frames'"))
    assert empty["embedding"] == "FLOAT[]" and _rows(home, "SELECT count(*) FROM frames") == [(0,)]
    ingest([archive], store, colour, LocalBackend(Encoder(colour)), IngestOptions(chunk_s=40))
    ingest([archive], store, tiny, LocalBackend(Encoder(tiny)), IngestOptions(chunk_s=40))
    views = {v for (v,) in _rows(home, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert {"frames", "frame_text"} <= views and sum(v.startswith("frames_") for v in views) == 2
    assert {m for (m,) in _rows(home, "SELECT DISTINCT model_id FROM frames")} == {tiny.model_id}
    dim = _rows(home, "SELECT data_type FROM information_schema.columns WHERE table_name = 'frames' AND column_name = 'embedding'")
    assert dim == [(f"FLOAT[{tiny.dim}]",)]


def test_duck_types_of_shard_columns():
    assert duck_type(pa.list_(pa.float32(), 512)) == "FLOAT[512]"
    assert duck_type(pa.list_(pa.float32())) == "FLOAT[]"
    assert [duck_type(t) for t in (pa.string(), pa.float64(), pa.int32(), pa.bool_())] == ["VARCHAR", "DOUBLE", "INTEGER", "BOOLEAN"]
    with pytest.raises(TypeError):
        duck_type(pa.date32())
