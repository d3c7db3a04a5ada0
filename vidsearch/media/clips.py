"""Cut a time range of a video into an MP4: stream copy from the keyframe before the start, else re-encode.

A copy can only start on a keyframe, so a copied clip starts at the last keyframe at or before
the range start and ends with the first packet at or after the range end (and the B-frames that
show before it, so no frame is missing). When the copy fails
(a codec the MP4 container cannot hold, a damaged stream), the range is decoded and re-encoded
to H.264, starting exactly at the range start.

A clip carries the source's first audio track over the same time, interleaved with the video:
copied when the MP4 holds its codec as it is (AAC, MP3, Opus, FLAC, ALAC, AC-3), else decoded
and encoded to AAC. Sound that does not decode is left out, and a read error ends the clip's
audio there (both said in ``Clip.audio_error``); neither fails the clip.
"""
from __future__ import annotations

import dataclasses
import fractions
import logging
from contextlib import closing
from pathlib import Path

from vidsearch.errors import VideoError, first_line
from vidsearch.media.video import codec_name, first_frame_turns, frames_between, seek_before

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Clip:
    path: Path
    method: str  # "stream-copy" | "re-encode"
    start: float  # source time of the clip's first frame
    end: float  # source time where the clip ends
    frames: int
    audio: str | None = None  # "stream-copy" | "re-encode" | None: the source has no audio
    audio_error: str | None = None  # what went wrong with the sound (damaged packets left out, an early end)

    def to_dict(self, root: Path) -> dict:
        d = {
            "path": self.path.relative_to(root).as_posix(), "method": self.method,
            "start": round(self.start, 3), "end": round(self.end, 3), "frames": self.frames, "audio": self.audio,
        }
        return {**d, "audio_error": self.audio_error} if self.audio_error else d


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
        base = top = None  # the keyframe's pts; the latest pts copied
        first_t = last_t = None
        n = 0
        with av.open(str(target), "w") as out:
            ost = _copy_stream(out, ist)
            with closing(_AudioTrack(src, out, MP4_AUDIO)) as audio:
                for pkt in _with_dts(inp.demux(ist), ist):
                    t = float((pkt.pts - s0) * tb)
                    if base is None:
                        if not pkt.is_keyframe:
                            continue  # a copy can only begin on a keyframe
                        base = pkt.pts  # the keyframe shows at clip time 0 (B-frames' dts may go below it)
                        first_t = t
                        audio.begin(float(base * tb))
                    elif pkt.pts < base:
                        continue  # shows before the first frame: an open GOP's leading picture, undecodable here
                    if n and float((pkt.dts - s0) * tb) >= end - 1e-6 and (pkt.is_keyframe or pkt.pts >= top):
                        break  # past the end, and no B-frame left that shows before a frame already copied
                    top = pkt.pts if top is None else max(top, pkt.pts)
                    dur = float(pkt.duration * tb) if pkt.duration else 0.0
                    last_t = t + dur if last_t is None else max(last_t, t + dur)
                    audio.mux_until(float((pkt.dts - base) * tb))
                    pkt.pts -= base
                    pkt.dts -= base
                    pkt.stream = ost
                    out.mux(pkt)
                    n += 1
                if n:
                    audio.finish(float((s0 - base) * tb) + last_t)
        if n == 0:
            raise VideoError(f"{src}: no packets between {start:.1f}s and {end:.1f}s")
    return Clip(target, "stream-copy", first_t, last_t, n, audio.method, audio.error)


def _reencode_clip(src: str, start: float, end: float, target: Path, browser: bool = False) -> Clip:
    """``[start, end)`` decoded and re-encoded to H.264. ``browser``: a fast preset, the index at the
    front (a browser starts playing at once), time 0 at ``start`` rather than at the first frame, and
    audio copied only in a codec browsers play."""
    import av

    with av.open(src, metadata_errors="ignore") as inp:
        ist = inp.streams.video[0]
        ist.thread_type = "AUTO"
        rate = ist.average_rate or ist.guessed_rate or fractions.Fraction(25)
        turns = first_frame_turns(inp, ist)  # the clip shows the picture turned as the source does
        seek_before(inp, ist, start)
        n = 0
        first_t = last_t = None
        opts = {"format": "mp4", "options": {"movflags": "+faststart"}} if browser else {}
        with av.open(str(target), "w", **opts) as out:
            ost = _h264_stream(out, ist, rate, fast=browser)
            if turns:
                ost.set_display_rotation(turns * 90)
            with closing(_AudioTrack(src, out, BROWSER_AUDIO if browser else MP4_AUDIO)) as audio:
                frame_tb = 1 / fractions.Fraction(rate)
                s0 = float((ist.start_time or 0) * ist.time_base)
                zero = start
                for t, frame in frames_between(inp.decode(ist), ist, start, end):
                    if first_t is None:
                        first_t = t
                        zero = start if browser else first_t
                        audio.begin(s0 + zero)
                    last_t = t + 1 / float(rate)
                    f = frame.reformat(width=ost.width, height=ost.height, format="yuv420p")
                    f.pts = int(round((t - zero) * float(rate)))
                    f.time_base = frame_tb  # pts counts frames (not the source's nor the muxer's time base)
                    for p in ost.encode(f):
                        audio.mux_until(float(p.pts * p.time_base))
                        out.mux(p)
                    n += 1
                for p in ost.encode():
                    audio.mux_until(float(p.pts * p.time_base))
                    out.mux(p)
                if n:
                    audio.finish(last_t - zero)
        if n == 0:
            raise VideoError(f"{src}: no frames between {start:.1f}s and {end:.1f}s")
    return Clip(target, "re-encode", first_t, last_t, n, audio.method, audio.error)


def _with_dts(packets, stream):
    """The packets that have a pts, each with a dts: MKV gives none to the first packets after a
    seek, and a muxer needs one. Those wait for the next packet that has it and count back from
    there a frame at a time (or take their pts where none ever comes)."""
    rate = stream.average_rate or stream.guessed_rate
    waiting: list = []
    for pkt in packets:
        if pkt.pts is None:
            continue  # the demuxer's final empty packet
        if pkt.dts is None:
            waiting.append(pkt)
            continue
        for i, w in enumerate(waiting):
            step = w.duration or (int(round(1 / (rate * stream.time_base))) if rate else 1)
            w.dts = min(w.pts, pkt.dts - (len(waiting) - i) * step)
            yield w
        waiting = []
        yield pkt
    for w in waiting:
        w.dts = w.pts
        yield w


def _copy_stream(out, ist):
    """An output stream for ``ist``'s packets as they are: its codec parameters only, so a codec
    this PyAV only decodes through an outside library (AV1 with libdav1d) copies too."""
    try:
        return out.add_stream_from_template(ist, opaque=True)
    except TypeError:  # PyAV before the opaque argument
        return out.add_stream_from_template(ist)


def _h264_stream(out, ist, rate, fast: bool = False):
    """An H.264 output stream at ``rate`` with the input's size (rounded down to even)."""
    ost = out.add_stream("libx264", rate=rate)
    ost.width = max(2, ist.codec_context.width // 2 * 2)
    ost.height = max(2, ist.codec_context.height // 2 * 2)
    ost.pix_fmt = "yuv420p"
    ost.time_base = 1 / fractions.Fraction(rate)  # the muxer may change it once the header is written
    ost.options = {"preset": "ultrafast", "crf": "20"} if fast else {"preset": "veryfast", "crf": "18"}
    return ost


#: audio codecs an MP4 holds as they are (copied into a clip); anything else is encoded to AAC
MP4_AUDIO = frozenset({"aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"})
#: those a browser also plays from an MP4 (the on-the-fly playback transcode)
BROWSER_AUDIO = frozenset({"aac", "mp3", "opus", "flac"})


class _AudioTrack:
    """The source's first audio track in a clip, over the video's time span.

    Its output stream is added with the video's (before the file's header is written);
    ``begin(t)`` gives the source time (seconds on the container's timeline) that is the clip's
    time 0; ``mux_until(t)`` writes the audio packets before clip time ``t``, called before each
    video packet so the two tracks stay interleaved; ``finish(t)`` writes the rest up to the
    clip's end. Packets are copied when the codec is in ``copyable``, else decoded, resampled
    and encoded to AAC. Alignment with the video is within one audio frame (a packet that
    starts before time 0 is left out). A packet that does not decode is left out (counted in
    ``error`` after the first good one); a read error ends the audio at that point (kept in
    ``error``): the video is what the clip is for."""

    def __init__(self, src: str, out, copyable: frozenset[str]):
        import av

        self.method: str | None = None
        self.error: str | None = None
        self.damaged = [0, 0]  # audio packets that did not decode: before the first that did, after it
        self.decoded = 0  # audio frames decoded (re-encoding)
        self._out = out
        self._inp = None
        self._pending = None  # (clip time, packet) read but not yet written
        self._packets = iter(())
        try:
            inp = av.open(src, metadata_errors="ignore")
        except (av.FFmpegError, OSError) as e:
            self.error = first_line(e)
            return
        if not inp.streams.audio:
            inp.close()
            return
        self._inp, self._ist = inp, inp.streams.audio[0]
        cc = self._ist.codec_context
        if codec_name(self._ist) in copyable:
            self._ost = _copy_stream(out, self._ist)
            self.method = "stream-copy"
        else:
            self._ost = out.add_stream("aac", rate=cc.sample_rate or 48000, layout="mono" if cc.layout.nb_channels == 1 else "stereo")
            self.method = "re-encode"

    def begin(self, zero: float) -> None:
        if self._inp is not None:
            self._packets = self._read(zero)

    def _read(self, zero: float):
        """(clip time, output packet) in time order, from ``zero`` on."""
        import av

        ist = self._ist
        tb = ist.time_base
        self._inp.seek(max(0, int(zero / tb)), stream=ist, backward=True)
        shift = int(round(zero / tb))
        encoder = self.method == "re-encode"
        rate = self._ost.rate
        written = None  # samples given to the encoder, from the first one at or after time 0
        for pkt in self._inp.demux(ist):
            if pkt.pts is None:
                continue
            if not encoder:
                if pkt.pts < shift:
                    continue
                pkt.pts -= shift
                pkt.dts = pkt.pts if pkt.dts is None else pkt.dts - shift
                pkt.stream = self._ost
                yield float(pkt.pts * tb), pkt
                continue
            try:
                frames = ist.decode(pkt)
            except av.InvalidDataError:
                # a packet cut by the seek (MPEG-PS/TS land mid-frame) or damaged: left out, as video does
                self.damaged[written is not None] += 1
                continue
            for frame in frames:
                if frame.pts is None or frame.pts < shift:
                    continue
                if written is None:
                    written = int(round(float((frame.pts - shift) * tb) * rate))
                frame.pts, frame.time_base = written, fractions.Fraction(1, rate)
                self.decoded += 1
                written += int(round(frame.samples * rate / frame.sample_rate))
                yield from self._encoded(frame)  # PyAV converts to AAC's sample format, layout and frame size
        if encoder:
            yield from self._encoded(None)

    def _encoded(self, frame):
        for p in self._ost.encode(frame):
            yield float(p.pts * p.time_base), p

    def mux_until(self, t: float) -> None:
        """Write the packets before clip time ``t``."""
        import av

        while self.error is None:
            try:
                if self._pending is None:
                    self._pending = next(self._packets, None)
                    if self._pending is None:
                        return
                when, pkt = self._pending
                if when >= t - 1e-6:
                    return
                self._out.mux(pkt)
                self._pending = None
            except (av.FFmpegError, ValueError) as e:
                self.error = f"audio ends early: {first_line(e)}"
                log.warning("%s", self.error)

    def finish(self, end: float) -> None:
        """Write the packets before the clip's ``end`` (clip time); the rest are left out."""
        self.mux_until(end)
        self._pending = None
        leading, later = self.damaged
        if self.error is None and later:
            self.error = f"{later} damaged audio packets left out"
        elif self.error is None and leading and not self.decoded:
            self.error = f"the sound did not decode ({leading} damaged packets)"

    def close(self) -> None:
        if self._inp is not None:
            self._inp.close()
