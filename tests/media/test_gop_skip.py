"""Ingest speed-ups that must not change what is indexed: GOP-aware decoding and chunk prefetch."""
from __future__ import annotations

import gc
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vidsearch.media import video as V
from vidsearch.models.encoder import Encoder
from vidsearch.ingest.local import LocalBackend
from vidsearch.ingest.pipeline import ingest
from vidsearch.ingest.plan import IngestOptions
from vidsearch.media.prefetch import prefetch as _prefetch
from vidsearch.core.plan import Sampling
from vidsearch.query.engine import load_frame_index
from vidsearch.index.shards import IndexStore
from vidsearch.demo.synth import make_video


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory) -> Path:
    """25 fps, a keyframe every 37 frames (GOPs straddle the 1 s grid), no B-frames."""
    return make_video(tmp_path_factory.mktemp("gop") / "gop37.mp4", 30, [(5, 9, "red")], size=(160, 96), fps=25, gop=37)


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory) -> Path:
    from vidsearch.demo.synth import write_video

    def frames():
        for i in range(250):
            img = np.full((96, 160, 3), (i * 3) % 255, np.uint8)
            img[40:56, (i * 5) % 140 : (i * 5) % 140 + 16] = 255
            yield img

    path = tmp_path_factory.mktemp("bf") / "bframes.mp4"
    return write_video(path, frames(), (160, 96), 25, gop=40, options={"preset": "fast", "bf": "3"})


def frames(path, start, end, fps, skip):
    return list(V.iter_frames(path, start, end, Sampling("fps", fps), 32, skip_unneeded=skip))


def assert_same(a, b):
    assert [t for t, _ in a] == [t for t, _ in b]
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fps", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("span", [(0.0, 30.0), (7.3, 19.9), (10.0, 20.0)])
def test_skipping_packets_yields_the_same_frames(gop_video, fps, span):
    a = frames(gop_video, *span, fps, skip=False)
    b = frames(gop_video, *span, fps, skip=True)
    assert len(a) >= int((span[1] - span[0]) * fps) - 1
    assert_same(a, b)


def needed(path, targets):
    import av

    with av.open(str(path)) as c:
        st = c.streams.video[0]
        total = sum(1 for p in c.demux(st) if p.size)
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        kept = sum(1 for _ in V._needed_packets(c.demux(st), targets, st.start_time or 0, st.time_base))
    return kept, total


def test_packets_after_the_last_sampled_frame_of_a_gop_are_not_decoded(gop_video):
    kept, total = needed(gop_video, Sampling("fps", 1.0).timestamps(0, 30))
    assert total == 750 and kept < 0.75 * total
    kept, _ = needed(gop_video, Sampling("fps", 0.1).timestamps(0, 30))
    assert kept < 0.2 * total  # GOPs without a sampled frame are skipped whole
    kept, _ = needed(gop_video, Sampling("fps", 1.0).timestamps(0, 5))
    assert kept < 0.15 * total  # demuxing stops once the chunk's grid is covered


def test_reordered_frames_turn_skipping_off(bframe_video):
    kept, total = needed(bframe_video, Sampling("fps", 1.0).timestamps(0, 10))
    assert kept == total  # B-frames: a later packet may be an earlier frame's reference
    assert_same(frames(bframe_video, 0, 10, 1.0, skip=False), frames(bframe_video, 0, 10, 1.0, skip=True))


def test_gops_longer_than_the_lookahead_are_decoded_whole(gop_video, monkeypatch):
    monkeypatch.setattr(V, "GOP_LOOKAHEAD", 10)
    assert_same(frames(gop_video, 2.0, 25.0, 1.0, skip=False), frames(gop_video, 2.0, 25.0, 1.0, skip=True))


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vidsearch-decode" and t.is_alive()]


def _wait_no_decode_threads(timeout=3.0) -> None:
    deadline = time.monotonic() + timeout
    while _decode_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _decode_threads()


def test_prefetch_stops_when_closed_or_dropped():
    p = _prefetch(itertools.count(), 4)
    assert [next(p) for _ in range(3)] == [0, 1, 2]
    p.close()
    _wait_no_decode_threads()
    p = _prefetch(itertools.count(), 4)
    next(p)
    del p
    gc.collect()
    _wait_no_decode_threads()

    def boom():
        yield 1
        raise ValueError("bad packet")

    p = _prefetch(boom(), 4)
    assert next(p) == 1
    with pytest.raises(ValueError, match="bad packet"):
        next(p)
    _wait_no_decode_threads()


def test_ingest_with_chunk_prefetch_indexes_every_frame_once(home, colour, archive):
    """The next chunk decodes while this one is embedded: same rows as chunk by chunk, no thread left."""
    store = IndexStore(home / "index")
    rep = ingest([archive], store, colour, LocalBackend(Encoder(colour), batch_size=4), IngestOptions(chunk_s=7))
    assert rep.chunks_failed == 0 and rep.frames == 40 + 30 + 25
    _wait_no_decode_threads()
    index = load_frame_index(store, colour.model_id)
    for code, rows in index.rows_by_video().items():
        pts = index.pts[rows]
        assert list(pts) == [float(i) for i in range(len(pts))]  # 1 fps, each second once, in order


@pytest.mark.parametrize("video", ["gop_video", "bframe_video"])
@pytest.mark.parametrize("span", [(0.0, 30.0), (3.0, 7.5)])
def test_keyframes_mode_sends_only_keyframe_packets_and_yields_the_same(request, video, span):
    path = request.getfixturevalue(video)
    got = list(V.iter_frames(path, *span, Sampling("keyframes"), 32))
    want = list(V.iter_frames(path, *span, Sampling("keyframes"), 32, skip_unneeded=False))
    assert len(got) >= 1
    assert_same(want, got)
