"""Seeking lands on a keyframe at or before the time asked, in every container.

MPEG-TS and MPEG-PS have no index: FFmpeg's seek there lands on some packet before the target,
often not a keyframe, and decoding from it loses every frame up to the next keyframe. A chunk of a
.ts file then began up to a GOP late (its first sample taken from a later frame, unreported), a
clip started late and a thumbnail showed a later frame. The GOP here (1.7 s) never lines up with
the chunk starts or the 1 s grid."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch.core.plan import Sampling
from vidsearch.demo.synth import make_video
from vidsearch.media.clips import cut_clip
from vidsearch.media.video import iter_frames, read_frame_at

GOP = 17  # frames at 10 fps
RED = (60.5, 62.0)
CONTAINERS = [("h264.ts", "libx264"), ("mpeg2.ts", "mpeg2video"), ("mpeg2.mpg", "mpeg2video"), ("h264.mkv", "libx264"),
              ("h264.mp4", "libx264")]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seek")
    return {name: make_video(root / name, 130.0, [(*RED, "red")], codec=codec, gop=GOP, size=(160, 96))
            for name, codec in CONTAINERS}


@pytest.mark.parametrize("name", [n for n, _ in CONTAINERS])
def test_chunks_thumbnails_and_clips_start_where_asked(videos, name, tmp_path):
    path = videos[name]
    for start in (4.3, 60.0, 120.0):  # every sample of the chunk, from its first grid time
        got = [t for t, _ in iter_frames(path, start, start + 4, Sampling("fps", 1.0), 64)]
        assert got == [float(t) for t in range(math.ceil(start), math.ceil(start + 4))], (start, got)
    # a thumbnail is the frame at the time asked: grey just before the scene, red at its first frame
    assert read_frame_at(path, RED[0] - 0.1).reshape(-1, 3).mean(0)[0] < 150
    r, g, _ = read_frame_at(path, RED[0]).reshape(-1, 3).mean(0)
    assert r > 180 and g < 90
    # a copied clip starts on a keyframe at or before the start: the one just before (MPEG-PS, whose
    # keyframe flags need the parser's context, lands on an earlier one), never after it
    clip = cut_clip(str(path), 60.3, 63.0, tmp_path / "c.mp4")
    gops = 2 if name.endswith(".mpg") else 1
    assert clip.method == "stream-copy" and 60.3 - gops * GOP / 10 - 1e-6 <= clip.start <= 60.3


def test_a_ts_file_is_indexed_whole(home, colour, runner, videos, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "cam.ts").symlink_to(videos["h264.ts"])
    rep = json.loads(run_cli(runner, "--index", tmp_path / "idx", "ingest", archive, "--model", "demo-colours",
                             "--motion", "off", "--json").stdout)
    assert rep["frames"] == 130 and rep["files_partial"] == 0
    rows = json.loads(run_cli(runner, "--index", tmp_path / "idx", "sql", "SELECT pts FROM frames ORDER BY pts", "--json").stdout)
    assert [r["pts"] for r in rows] == [float(t) for t in range(130)]  # 60.0 and 120.0 too, not a later frame


class _Packet:
    def __init__(self, ms: int, key: bool):
        self.pts = self.dts = ms
        self.is_keyframe = key
        self.size = 1


class _Container:
    """Packets every 40 ms of a 2 h stream; seeking lands on the packet at or before the target."""

    def __init__(self, key_every_ms: int | None):
        self.key_every, self.at, self.seeks = key_every_ms, 0, []

    def seek(self, ts, stream=None, backward=True, any_frame=False):
        self.seeks.append(ts)
        self.at = max(0, ts - ts % 40)

    def demux(self, stream):
        for ms in range(self.at, 7_200_000, 40):
            yield _Packet(ms, bool(self.key_every) and ms % self.key_every == 0)


def test_a_stream_that_flags_no_keyframe_is_not_read_from_its_start():
    """No keyframe flags at all: the search stops 64 s back and decodes from where the seek lands,
    as before (a chunk an hour in must not read the hour before it)."""
    import fractions
    from types import SimpleNamespace

    from vidsearch.media.video import MAX_SEEK_BACK_S, seek_before

    stream = SimpleNamespace(time_base=fractions.Fraction(1, 1000), start_time=0)
    flagless = _Container(None)
    seek_before(flagless, stream, 3600.0)
    assert min(flagless.seeks) >= (3600 - MAX_SEEK_BACK_S) * 1000 and flagless.seeks[-1] == 3_600_000
    keyed = _Container(1_680)  # a keyframe every 1.68 s: the one at or before the hour
    seek_before(keyed, stream, 3600.0)
    assert keyed.seeks[-1] == 3600_000 - 3600_000 % 1_680 and keyed.at % 1_680 == 0
