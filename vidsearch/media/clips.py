"""Cut a time range of a video into an MP4: stream copy from the keyframe before the start, else re-encode.

A copy can only start on a keyframe, so a copied clip starts at the last keyframe at or before
the range start and ends with the first packet at or after the range end. When the copy fails
(a codec the MP4 container cannot hold, a damaged stream), the range is decoded and re-encoded
to H.264, starting exactly at the range start. Clips carry the video stream only.
"""
from __future__ import annotations

import dataclasses
import fractions
import logging
from pathlib import Path

from vidsearch.errors import VideoError, first_line
from vidsearch.media.video import frames_between, seek_before

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Clip:
    path: Path
    method: str  # "stream-copy" | "re-encode"
    start: float  # source time of the clip's first frame
    end: float  # source time where the clip ends
    frames: int

    def to_dict(self, root: Path) -> dict:
        return {
            "path": self.path.relative_to(root).as_posix(), "method": self.method,
            "start": round(self.start, 3), "end": round(self.end, 3), "frames": self.frames,
        }


def cut_clip(src: str, start: float, end: float, target: Path, copy: bool = True) -> Clip:
    """``[start, end)`` of ``src`` as an MP4: stream copy from the keyframe before ``start``, else re-encode."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        try:
            return _copy_clip(src, start, end, target)
        except (av.FFmpegError, ValueError, OSError, TypeError, VideoError) as e:
            log.warning("%s: stream copy of %.1f-%.1fs failed (%s); re-encoding", src, start, end, first_line(e))
            target.unlink(missing_ok=True)
    try:
        return _reencode_clip(src, start, end, target)
    except (av.FFmpegError, ValueError, OSError) as e:
        target.unlink(missing_ok=True)
        raise VideoError(f"{src}: cannot cut {start:.1f}-{end:.1f}s ({first_line(e)})") from None


def _copy_clip(src: str, start: float, end: float, target: Path) -> Clip:
    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        tb = ist.time_base
        s0 = ist.start_time or 0
        seek_before(inp, ist, start)
        base = None
        first_t = last_t = None
        n = 0
        with av.open(str(target), "w") as out:
            ost = out.add_stream_from_template(ist)
            for pkt in inp.demux(ist):
                if pkt.dts is None or pkt.pts is None:
                    continue  # the demuxer's final empty packet
                t = float((pkt.pts - s0) * tb)
                if base is None:
                    if not pkt.is_keyframe:
                        continue  # a copy can only begin on a keyframe
                    base = pkt.dts
                    first_t = t
                if n and float((pkt.dts - s0) * tb) >= end - 1e-6:
                    break
                dur = float(pkt.duration * tb) if pkt.duration else 0.0
                last_t = t + dur if last_t is None else max(last_t, t + dur)
                pkt.pts -= base
                pkt.dts -= base
                pkt.stream = ost
                out.mux(pkt)
                n += 1
        if n == 0:
            raise VideoError(f"{src}: no packets between {start:.1f}s and {end:.1f}s")
    return Clip(target, "stream-copy", first_t, last_t, n)


def _reencode_clip(src: str, start: float, end: float, target: Path, browser: bool = False) -> Clip:
    """``[start, end)`` decoded and re-encoded to H.264. ``browser``: a fast preset, the index at the
    front (a browser starts playing at once) and time 0 at ``start`` rather than at the first frame."""
    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        rate = ist.average_rate or ist.guessed_rate or fractions.Fraction(25)
        seek_before(inp, ist, start)
        n = 0
        first_t = last_t = None
        opts = {"format": "mp4", "options": {"movflags": "+faststart"}} if browser else {}
        with av.open(str(target), "w", **opts) as out:
            ost = _h264_stream(out, ist, rate, fast=browser)
            for t, frame in frames_between(inp.decode(ist), ist, start, end):
                first_t = t if first_t is None else first_t
                last_t = t + 1 / float(rate)
                f = frame.reformat(width=ost.width, height=ost.height, format="yuv420p")
                f.pts = int(round((t - (start if browser else first_t)) * float(rate)))
                for p in ost.encode(f):
                    out.mux(p)
                n += 1
            for p in ost.encode():
                out.mux(p)
        if n == 0:
            raise VideoError(f"{src}: no frames between {start:.1f}s and {end:.1f}s")
    return Clip(target, "re-encode", first_t, last_t, n)


def _h264_stream(out, ist, rate, fast: bool = False):
    """An H.264 output stream at ``rate`` with the input's size (rounded down to even)."""
    ost = out.add_stream("libx264", rate=rate)
    ost.width = max(2, ist.codec_context.width // 2 * 2)
    ost.height = max(2, ist.codec_context.height // 2 * 2)
    ost.pix_fmt = "yuv420p"
    ost.time_base = 1 / fractions.Fraction(rate)
    ost.options = {"preset": "ultrafast", "crf": "20"} if fast else {"preset": "veryfast", "crf": "18"}
    return ost
