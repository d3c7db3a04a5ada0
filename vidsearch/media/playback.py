"""Browser playback of indexed videos: which files a browser plays as they are (served with HTTP
range requests), and an on-the-fly H.264 transcode of one time range for all the others."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vidsearch.errors import VideoError, first_line
from vidsearch.media.clips import _reencode_clip
from vidsearch.media.video import codec_name

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
            vcodec = codec_name(v)
            acodecs = [codec_name(a) for a in c.streams.audio]
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
    """``[start, end)`` of ``src`` re-encoded to H.264 (yuv420p, with its sound) in an MP4 whose time 0 is
    ``start`` (moov first, so a browser starts playing at once). Written atomically; raises VideoError."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}.mp4")
    try:
        _reencode_clip(str(src), start, end, tmp, browser=True)  # VideoError when no frame is in range
    except VideoError:
        tmp.unlink(missing_ok=True)
        raise
    except (av.FFmpegError, OSError, IndexError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"{src}: cannot transcode {start:.1f}-{end:.1f}s ({first_line(e)})") from None
    os.replace(tmp, target)
    return target
