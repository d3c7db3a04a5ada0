"""The OCR channel's per-video query copy (vidsearch.ocr.textcache): built on first use, rebuilt only
for videos whose shards changed, and giving the same ranges as the shards themselves.

The shards are written directly (no OCR engine needed): a video with EXIT on screen at known
times, read every 2 s.
"""
from __future__ import annotations

import dataclasses
import os
import time

import pytest

from vidsearch.ocr import textcache
from vidsearch.ocr.channel import OCR_CHANNEL, TEXT_DIM, _rows_table
from vidsearch.query.text import text_ranges
from vidsearch.core.plan import ChunkSpec
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore

pytestmark = pytest.mark.ocr("rapidfuzz")  # text matching


@dataclasses.dataclass
class Line:
    text: str
    confidence: float = 0.9
    box: tuple = (0.1, 0.1, 0.5, 0.2)


def write_chunk(store: IndexStore, vid: str, start: float, end: float, texts: dict[float, str]) -> None:
    """An OCR chunk read every 2 s, with ``texts`` (time -> line) on screen."""
    import numpy as np

    spec = ChunkSpec(vid, f"/archive/{vid[:4]}.mp4", start, end, "fps=0.5", OCR_CHANNEL)
    sampled = [float(t) for t in np.arange(start, end, 2.0)]
    rows = [(t, Line(texts[t])) for t in sampled if t in texts]
    vec = {r.text: np.eye(TEXT_DIM, dtype=np.float32)[0] for _, r in rows}
    store.write_table_shard(spec, _rows_table(spec, rows, vec), extra={"frames": len(sampled), "sampled": sampled})


def spans(result) -> list[tuple]:
    return sorted((r.video_id[:4], r.start, r.end) for r in result.ranges)


def age(path, seconds: float = 60.0) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.fixture
def store(tmp_path):
    store = IndexStore(tmp_path / "index")
    a, b = "aaaa" + "0" * 60, "bbbb" + "0" * 60
    write_chunk(store, a, 0, 20, {6.0: "EMERGENCY EXIT", 8.0: "EMERGENCY EXIT"})
    write_chunk(store, a, 20, 40, {})
    write_chunk(store, b, 0, 20, {10.0: "EXIT ONLY", 12.0: "FRESH BREAD"})
    with Catalog(store) as cat:
        for vid, d in ((a, 40.0), (b, 20.0)):
            cat.upsert_video(vid, {"path": f"/archive/{vid[:4]}.mp4", "duration": d, "width": 640, "height": 360}, 1)
    for d in store.shards_root.glob("*/*/*"):
        age(d)  # settled directories: the cache records their mtimes
    return store


def test_the_cache_is_built_once_and_rebuilt_per_changed_video(store):
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0), ("bbbb", 10.0, 12.0)]
    d = textcache.cache_dir(store, OCR_CHANNEL)
    files = {p.stem[:4]: p for p in d.glob("*.arrow")}
    assert set(files) == {"aaaa", "bbbb"} and (d / "manifest.json").exists()
    table, sampled = textcache.read(files["aaaa"], ["pts", "text"])
    assert sampled == [float(t) for t in range(0, 40, 2)] and table.column("text").to_pylist() == ["EMERGENCY EXIT"] * 2
    stamps = {k: p.stat().st_mtime_ns for k, p in files.items()}

    time.sleep(0.01)
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0), ("bbbb", 10.0, 12.0)]
    assert {k: p.stat().st_mtime_ns for k, p in files.items()} == stamps  # nothing rebuilt

    # a new chunk of video a: only its file is rebuilt, and the new sighting is found
    write_chunk(store, "aaaa" + "0" * 60, 40, 60, {50.0: "EXIT"})
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0), ("aaaa", 50.0, 52.0), ("bbbb", 10.0, 12.0)]
    assert files["aaaa"].stat().st_mtime_ns != stamps["aaaa"] and files["bbbb"].stat().st_mtime_ns == stamps["bbbb"]


def test_a_removed_video_leaves_the_cache_and_a_deleted_cache_comes_back(store):
    import shutil

    text_ranges(store, "EXIT", semantic=False)
    vid_dir = next(store.shards_root.glob("*/bb/*"))
    shutil.rmtree(vid_dir)
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0)]
    d = textcache.cache_dir(store, OCR_CHANNEL)
    assert [p.stem[:4] for p in d.glob("*.arrow")] == ["aaaa"]
    shutil.rmtree(d)
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0)]


def test_a_marker_whose_shard_is_unreadable_is_left_out(store, caplog):
    shard = next(store.shards_root.glob("*/bb/*/*.parquet"))
    shard.write_bytes(b"not parquet")
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0)]
    assert "skipping" in caplog.text


def test_a_read_only_index_keeps_the_copy_in_temp_space(store, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    real = textcache._refresh

    def read_only(store_, channel, d):
        if d == textcache.cache_dir(store_, channel):
            raise PermissionError(13, "Permission denied", str(d))
        return real(store_, channel, d)

    monkeypatch.setattr(textcache, "_refresh", read_only)
    assert spans(text_ranges(store, "EXIT", semantic=False)) == [("aaaa", 6.0, 10.0), ("bbbb", 10.0, 12.0)]
    assert not textcache.cache_dir(store, OCR_CHANNEL).exists()
    assert len(list(textcache.fallback_dir(store, OCR_CHANNEL).glob("*.arrow"))) == 2
    assert str(textcache.fallback_dir(store, OCR_CHANNEL)).startswith(str(tmp_path / "tmp"))
