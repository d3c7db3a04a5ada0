"""Clips (evidence export, browser playback): the source's sound comes along, in step with the picture.

Every source shows a red scene from 5 to 8 s with a 440 Hz tone over exactly that time; a clip
must show the first red frame and start the tone at the same clip time, and its frames must
advance one frame at a time (a re-encode once gave every frame time 0)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vidsearch.demo.synth import make_video
from vidsearch.media.clips import cut_clip
from vidsearch.media.playback import transcode_range

X264_BFRAMES = {"preset": "veryfast", "bf": "2"}  # dts before pts: a copy's timeline is shifted


def sources(root: Path) -> dict[str, Path]:
    red = [(5.0, 8.0, "red")]
    return {
        "h264-aac": make_video(root / "aac.mp4", 12.0, red, audio="aac", options=X264_BFRAMES),
        "h264-pcm": make_video(root / "pcm.mov", 12.0, red, audio="pcm_s16le", gop=25),
        "mpeg4-mp2": make_video(root / "mp2.avi", 12.0, red, codec="mpeg4", audio="mp2"),
        "silent": make_video(root / "silent.mp4", 12.0, red),
        "h264-mp3": make_video(root / "mp3.mp4", 12.0, red, audio="libmp3lame"),  # decoder "mp3float", codec mp3
        "ts-aac": make_video(root / "aac.ts", 12.0, red, audio="aac"),  # ADTS in MPEG-TS, copied into MP4
        # x265: open GOPs (leading pictures before each keyframe) and B-frames; MKV gives the first
        # packets after a seek no dts
        "hevc-opus": make_video(root / "hevc.mkv", 12.0, red, codec="libx265", audio="libopus",
                                options={"x265-params": "log-level=none"}),
        "av1-flac": make_video(root / "av1.mkv", 12.0, red, codec="libsvtav1", audio="flac"),  # decoded by libdav1d
        "mpeg2-mp2-ps": make_video(root / "mp2.mpg", 12.0, red, codec="mpeg2video", audio="mp2"),  # MPEG-PS: no index
    }


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> dict[str, Path]:
    return sources(tmp_path_factory.mktemp("av"))


def picture_and_sound(path: Path) -> dict:
    """Times of the clip's frames, of its first red frame, of the tone's first and last sample, and the audio codec."""
    import av

    with av.open(str(path)) as c:
        frames = [(float(f.time), f.to_ndarray(format="rgb24").reshape(-1, 3).mean(0)) for f in c.decode(video=0)]
    out = {"times": [t for t, _ in frames],
           "red": next((t for t, (r, g, b) in frames if r > 150 and g < 90), None), "audio": None}
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return out
        out["audio"] = c.streams.audio[0].codec_context.name
        decoded = list(c.decode(audio=0))
    rate = decoded[0].sample_rate
    x = np.concatenate([f.to_ndarray().astype(np.float32).mean(0) if f.format.is_planar
                        else f.to_ndarray().astype(np.float32).reshape(-1) for f in decoded])
    t0 = float(decoded[0].time)
    loud = np.flatnonzero(np.abs(x) > 0.2 * np.abs(x).max())
    out.update(tone=(t0 + loud[0] / rate, t0 + loud[-1] / rate), sound_end=t0 + len(x) / rate)
    return out


def check_in_step(clip_path: Path, fps: float = 10.0, steady: bool = True) -> dict:
    """``steady``: the frames advance exactly one frame at a time (a copy keeps the source's own
    timestamps, which PyAV's MPEG-PS muxer writes half a frame off here and there)."""
    got = picture_and_sound(clip_path)
    steps = np.diff(got["times"])
    assert np.all(steps > 0) and (not steady or np.allclose(steps, 1 / fps, atol=1e-3)), steps  # in order
    if got["audio"]:
        # the tone starts with the red picture, within an audio frame (~24 ms) and the video's 1 ms rounding
        assert got["tone"][0] == pytest.approx(got["red"], abs=0.03), got
        # and the sound lasts as long as the picture (to within a frame either way)
        assert got["sound_end"] == pytest.approx(got["times"][-1] + 1 / fps, abs=1 / fps), got
    return got


@pytest.mark.parametrize("name, copy, video, audio", [
    ("h264-aac", True, "stream-copy", "stream-copy"),
    ("h264-aac", False, "re-encode", "stream-copy"),
    ("h264-pcm", True, "stream-copy", "re-encode"),  # PCM: not an MP4 codec, so AAC
    ("h264-pcm", False, "re-encode", "re-encode"),
    ("mpeg4-mp2", False, "re-encode", "re-encode"),
    ("silent", True, "stream-copy", None),
    ("h264-mp3", True, "stream-copy", "stream-copy"),
    ("ts-aac", True, "stream-copy", "stream-copy"),
    ("hevc-opus", True, "stream-copy", "stream-copy"),
    ("av1-flac", True, "stream-copy", "stream-copy"),
    ("mpeg2-mp2-ps", True, "stream-copy", "re-encode"),
])
def test_clip_carries_the_sound_in_step(src, tmp_path, name, copy, video, audio):
    clip = cut_clip(str(src[name]), 4.3, 9.0, tmp_path / "c.mp4", copy=copy)
    assert (clip.method, clip.audio, clip.audio_error) == (video, audio, None)
    got = check_in_step(clip.path, steady=not (copy and name.endswith("-ps")))
    assert (got["audio"] is None) == (audio is None)
    # the red scene starts 5 s into the source: clip time = 5 - the clip's first frame
    assert got["red"] == pytest.approx(5.0 - clip.start, abs=1e-3)
    if audio:
        assert got["tone"][1] == pytest.approx(8.0 - clip.start, abs=0.03)  # and stops with it


def test_browser_transcode_keeps_the_sound(src, tmp_path):
    # MPEG-4 Part 2 video and MP2 sound in AVI: neither plays in a browser; H.264 + AAC, time 0 at the start asked for
    out = transcode_range(src["mpeg4-mp2"], 3.0, 9.0, tmp_path / "t.mp4")
    got = check_in_step(out)
    assert got["audio"] == "aac" and got["red"] == pytest.approx(2.0) and got["tone"][0] == pytest.approx(2.0, abs=0.03)


def test_damaged_sound_never_costs_the_picture(tmp_path):
    """Audio packets that do not decode are left out, and said; the picture is whole."""
    import av

    good = make_video(tmp_path / "v.avi", 6.0, [(2.0, 4.0, "red")], codec="mpeg4")
    bad = tmp_path / "bad.avi"
    rng = np.random.default_rng(0)
    with av.open(str(good)) as inp, av.open(str(bad), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        ast = out.add_stream("mp2", rate=48000, layout="mono")
        for i, pkt in enumerate(inp.demux(ist)):
            if pkt.dts is None:
                continue
            pkt.stream = ost
            out.mux(pkt)
            junk = av.Packet(rng.integers(0, 256, 417, dtype=np.uint8).tobytes())
            junk.stream, junk.pts, junk.dts = ast, i * 4800, i * 4800
            junk.time_base = ast.time_base
            out.mux(junk)
    clip = cut_clip(str(bad), 1.0, 5.0, tmp_path / "c.mp4", copy=False)
    assert clip.method == "re-encode" and clip.frames == 40
    assert clip.audio == "re-encode" and re.fullmatch(r"the sound did not decode \(\d+ damaged packets\)", clip.audio_error)
    assert len(picture_and_sound(clip.path)["times"]) == 40
