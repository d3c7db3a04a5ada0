"""Browser playback of indexed videos: which files a browser plays as they are (served with HTTP
range requests), and an on-the-fly H.264 transcode of one time range for all the others."""
from __future__ import annotations

import fractions
import hashlib
import os
from pathlib import Path

from vidsearch.errors import VideoError

#: container family -> (video codecs, audio codecs) that Chromium / Firefox play natively
BROWSER_CODECS = {
    "mp4": ({"h264", "av1", "vp9"}, {"aac", "mp3", "opus", "flac"}),
    "webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
}
MIME = {"mp4": "video/mp4", "webm": "video/webm"}


def media_info(path: str | os.PathLike) -> dict:
    """Container family, codecs, fps, duration and whether a browser plays the file as it is."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            names = set(c.format.name.split(","))
            family = "mp4" if names & {"mp4", "mov"} else "webm" if names & {"webm", "matroska"} else c.format.name
            v = c.streams.video[0]
            vcodec = v.codec_context.name
            acodecs = [a.codec_context.name for a in c.streams.audio]
            rate = v.average_rate or v.guessed_rate
            duration = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
    except (av.FFmpegError, OSError, IndexError) as e:
        raise VideoError(f"{path}: cannot open for playback ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    video_ok, audio_ok = BROWSER_CODECS.get(family, (set(), set()))
    playable = vcodec in video_ok and all(a in audio_ok for a in acodecs)
    return {"container": family, "video_codec": vcodec, "audio_codecs": acodecs, "fps": float(rate) if rate else None,
            "duration": round(duration, 3), "playable": playable, "mime": MIME.get(family) if playable else "video/mp4"}


def clip_name(video_id: str, start: float, end: float) -> str:
    return hashlib.sha256(f"{video_id}:{start:.3f}:{end:.3f}".encode()).hexdigest()[:24] + ".mp4"


def transcode_range(src: str | os.PathLike, start: float, end: float, target: Path) -> Path:
    """``[start, end)`` of ``src`` re-encoded to H.264 (yuv420p, video only) in an MP4 whose time 0 is
    ``start`` (moov first, so a browser starts playing at once). Written atomically; raises VideoError."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}.mp4")
    try:
        n = _encode(str(src), start, end, tmp)
    except (av.FFmpegError, OSError, IndexError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"{src}: cannot transcode {start:.1f}-{end:.1f}s ({str(e).splitlines()[0] if str(e) else e})") from None
    if n == 0:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"{src}: no frames between {start:.1f}s and {end:.1f}s")
    os.replace(tmp, target)
    return target


def _encode(src: str, start: float, end: float, target: Path) -> int:
    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        tb, s0 = ist.time_base, ist.start_time or 0
        rate = ist.average_rate or ist.guessed_rate or fractions.Fraction(25)
        if start > 0:
            inp.seek(int(start / tb) + s0, stream=ist, backward=True)
        n = 0
        with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            ost = out.add_stream("libx264", rate=rate)
            ost.width, ost.height = max(2, ist.codec_context.width // 2 * 2), max(2, ist.codec_context.height // 2 * 2)
            ost.pix_fmt = "yuv420p"
            ost.time_base = 1 / fractions.Fraction(rate)
            ost.options = {"preset": "ultrafast", "crf": "20"}
            for frame in inp.decode(ist):
                if frame.pts is None:
                    continue
                t = float((frame.pts - s0) * tb)
                if t < start - 1e-6:
                    continue
                if t >= end - 1e-6:
                    break
                f = frame.reformat(width=ost.width, height=ost.height, format="yuv420p")
                f.pts = int(round((t - start) * float(rate)))
                for p in ost.encode(f):
                    out.mux(p)
                n += 1
            for p in ost.encode():
                out.mux(p)
    return n
