"""PyAV adapter: probe a file, lazily yield sampled frames of a time range, read one frame.

Frames come out already resized by swscale (``frame.reformat``), as uint8 RGB arrays.
Every PyAV/FFmpeg failure becomes a one-line :class:`VideoError`; a damaged packet is skipped and
decoding goes on with the next one (:class:`DecodeReport` says what was skipped).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vidsearch.core.plan import Sampling
from vidsearch.core.preprocess import resize_dims
from vidsearch.errors import VideoError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float
    width: int
    height: int
    fps: float | None
    codec: str
    frames: int | None
    creation_time: str | None
    #: degrees counter-clockwise the decoded picture is turned to show it as recorded (a phone
    #: held upright: 90 or 270); ``width`` x ``height`` is the picture as shown, after the turn
    rotation: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DecodeReport:
    """What :func:`iter_frames` met on the way: the source's frame interval and damaged packets."""

    frame_interval: float | None = None  # seconds between source frames (1 / average rate), if known
    errors: int = 0  # packets the decoder (or demuxer) rejected
    first_error: str | None = None

    def note(self, e: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = _av_error_text(e)


def _av_error_text(e: Exception) -> str:
    """FFmpeg's reason without the errno and path PyAV wraps it in."""
    text = getattr(e, "strerror", None) or str(e).strip() or type(e).__name__
    return str(text).splitlines()[0]


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open the container and read what a planner needs. Raises VideoError on bad input."""
    import av

    path = str(path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise VideoError(f"{path}: cannot read file ({e.strerror or e})") from None
    if size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        with av.open(path, metadata_errors="ignore") as container:
            streams = container.streams.video
            if not streams:
                raise VideoError(f"{path}: no video stream")
            stream = streams[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            if not duration and container.duration is not None:
                duration = container.duration / 1_000_000
            width = stream.codec_context.width
            height = stream.codec_context.height
            if not width or not height:
                raise VideoError(f"{path}: video stream has no frame size (corrupt header?)")
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            meta = dict(container.metadata or {})
            creation = meta.get("creation_time") or dict(stream.metadata or {}).get("creation_time")
            untimed, demuxed = 0, not duration
            if demuxed:
                duration, untimed = _duration_by_demux(container, stream)
            if (not duration or duration <= 0) and untimed:
                name = os.path.basename(path)
                raise VideoError(
                    f"{path}: a bare {stream.codec_context.name} stream ({untimed} frames) with no timestamps, as some "
                    f"recorders export it; put it in a container first, e.g. `ffmpeg -framerate 25 -i {name} -c copy "
                    f"{os.path.splitext(name)[0]}.mkv` with the camera's frame rate, and index that")
            if not duration or duration <= 0:
                raise VideoError(f"{path}: no decodable video frames")
            if demuxed:  # read to the end above: back to the start for the first frame
                with contextlib.suppress(av.FFmpegError, ValueError):
                    container.seek(0)
            turnable = set(container.format.name.split(",")) & TURNABLE_FORMATS
            rotation = first_frame_turns(container, stream) * 90 if turnable else 0
            if rotation in (90, 270):
                width, height = height, width
            return VideoInfo(
                path=path, duration=round(duration, 3), width=width, height=height, fps=fps,
                codec=stream.codec_context.name, frames=stream.frames or None, creation_time=creation,
                rotation=rotation,
            )
    except VideoError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
        raise VideoError(f"{path}: not a readable video ({_av_error_text(e)})") from None


#: containers that record a display turn (MP4/MOV's matrix, Matroska's projection): only their
#: probe decodes a first frame to read it
TURNABLE_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"})
#: containers whose timestamps can start again mid-file: MPEG-TS and MPEG-PS (segments joined
#: with ``cat``, a recorder restarted mid-file)
RESTARTING_FORMATS = frozenset({"mpegts", "mpeg"})
#: a step back in decode time larger than this (seconds) is a restart, not jitter
RESTART_S = 1.0


def timestamp_restart(path: str | os.PathLike) -> float | None:
    """The time (seconds into the file) after which the video's timestamps start again from an
    earlier time, or None. In such a file a time names two moments, and FFmpeg's duration and
    seeks see one of them. Only MPEG-TS/PS are read, every packet's header (about as fast as
    hashing the file); an error on the way ends the check (probe has said what it can read)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not set(container.format.name.split(",")) & RESTARTING_FORMATS or not container.streams.video:
                return None
            stream = container.streams.video[0]
            tb, s0, top = stream.time_base, stream.start_time or 0, None
            for packet in container.demux(stream):
                ts = packet.dts if packet.dts is not None else packet.pts
                if ts is None:
                    continue
                if top is not None and (top - ts) * tb > RESTART_S:
                    return round(float((top - s0) * tb), 3)
                top = ts if top is None else max(top, ts)
    except (av.FFmpegError, OSError, ValueError):
        pass
    return None


def check_size(path: str | os.PathLike, size: int | None) -> None:
    """Raise :class:`VideoError` when the file no longer has the ``size`` (bytes) it had when its
    chunks were planned: it is still being written, or was replaced. None: not recorded."""
    if size is None:
        return
    try:
        now = os.path.getsize(path)
    except OSError as e:
        raise VideoError(f"{path}: cannot read file ({e.strerror or e})") from None
    if now != size:
        raise VideoError(f"{path}: changed since its chunks were planned ({size} bytes, now {now}): still being "
                         "written, or replaced? run the ingest again once it is complete")


def quarter_turns(frame) -> int:
    """Quarter turns counter-clockwise (0-3) that show a decoded ``frame`` as recorded: the
    container's display matrix (a phone's portrait video is stored landscape with a 90 or 270
    degree turn), which FFmpeg hands on with every frame. Flips and odd angles are ignored."""
    try:
        degrees = frame.rotation
    except (AttributeError, TypeError, ValueError):  # PyAV without display matrices
        return 0
    return int(round((degrees or 0) / 90.0)) % 4


def upright(frame, width: int, height: int) -> np.ndarray:
    """``frame`` scaled to ``width`` x ``height`` (its stored orientation) as RGB, turned as it is shown."""
    arr = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    k = quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def first_frame_turns(container, stream, max_packets: int = 64) -> int:
    """:func:`quarter_turns` of the first frame that decodes from where ``container`` is (0 when none
    does within ``max_packets``): PyAV does not expose the stream's display matrix. The caller
    seeks where it wants to read next."""
    import av

    turns = 0
    try:
        for n, packet in enumerate(container.demux(stream)):
            frames = _decode_quietly(stream, packet)
            if frames:
                turns = quarter_turns(frames[0])
                break
            if n >= max_packets:
                break
    except (av.FFmpegError, ValueError):
        pass
    with contextlib.suppress(av.FFmpegError, ValueError):
        stream.codec_context.flush_buffers()
    return turns


def _decode_quietly(stream, packet) -> list:
    import av

    try:
        return stream.decode(packet)
    except (av.FFmpegError, ValueError):
        return []


def _duration_by_demux(container, stream) -> tuple[float | None, int]:
    """Last packet time, for containers whose header has no duration (some .ts), and how many
    packets carried data but no timestamp (a bare elementary stream: all of them)."""
    last, untimed = None, 0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            last = t if last is None else max(last, t)
        elif packet.size:
            untimed += 1
    return last, untimed


#: how far back :func:`seek_before` looks for a keyframe before giving up (a stream that flags none
#: would otherwise be decoded from its start for every chunk)
MAX_SEEK_BACK_S = 64.0


def codec_name(stream) -> str:
    """The stream's codec (``mp3``), not its decoder's name (``mp3float``)."""
    cc = stream.codec_context
    return getattr(cc.codec, "canonical_name", None) or cc.name


def seek_before(container, stream, start: float) -> None:
    """Seek ``stream`` to the keyframe at or before ``start`` seconds (nothing to do at 0).

    A container with an index (MP4, MOV, MKV, AVI) lands there. MPEG-TS, MPEG-PS and other
    streams without one land on some packet at or before the target, often not a keyframe, and
    decoding from there loses every frame up to the next keyframe (a chunk of a .ts file began
    up to a GOP late). Then the packets of a window before ``start`` (2, 4, 8 ... 64 s) are read,
    not decoded, for the last keyframe at or before it, and the seek goes to that packet's own
    timestamp (or, where the container cannot land on it, to the window's start: the decoder
    drops what comes before the keyframe)."""
    if start <= 0 or not stream.time_base:
        return
    tb, s0 = stream.time_base, stream.start_time or 0

    def seek(ts: int) -> None:
        container.seek(ts, stream=stream, backward=True, any_frame=False)

    def at(seconds: float) -> int:
        return int(max(0.0, seconds) / tb) + s0

    seek(at(start))
    if _on_keyframe_before(container, stream, start):
        return seek(at(start))
    back = 2.0
    while back <= MAX_SEEK_BACK_S:
        lo = at(start - back)
        seek(lo)
        key = _last_keyframe(container, stream, start)
        if key is not None:
            seek(key)
            return seek(key if _on_keyframe_before(container, stream, start) else lo)
        if start - back <= 0:
            return seek(lo)
        back *= 2
    seek(at(start))  # no keyframe flags within reach (a stream that sets none): decode from where it lands


def _packet_time(packet, stream) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None else float((ts - (stream.start_time or 0)) * stream.time_base)


def _on_keyframe_before(container, stream, start: float) -> bool:
    """Is the next packet of ``stream`` (read, so seek again) a keyframe at or before ``start``?"""
    first = next((p for p in container.demux(stream) if _packet_time(p, stream) is not None), None)
    return first is None or (first.is_keyframe and _packet_time(first, stream) <= start + 1e-6)


def _last_keyframe(container, stream, start: float) -> int | None:
    """The timestamp to seek to (decode time where there is one) of the last keyframe at or
    before ``start``, reading packets from where the container is (None: none there)."""
    key = None
    for p in container.demux(stream):
        t = _packet_time(p, stream)
        if t is None:
            continue
        if t > start + 1e-6:
            break
        if p.is_keyframe:
            key = p.dts if p.dts is not None else p.pts
    return key


def frames_between(frames: Iterable, stream, start: float, end: float) -> Iterator[tuple[float, object]]:
    """``(seconds, frame)`` for the decoded ``frames`` of ``stream`` in ``[start, end)``: frames
    before ``start`` (decoded from the keyframe a seek lands on) are skipped; the first one at or
    after ``end`` stops the iteration."""
    tb = stream.time_base
    start_pts = stream.start_time or 0
    for frame in frames:
        if frame.pts is None:
            continue
        t = float((frame.pts - start_pts) * tb)
        if t < start - 1e-6:
            continue
        if t >= end - 1e-6:
            return
        yield t, frame


def iter_frames(
    path: str | os.PathLike,
    start: float,
    end: float,
    sampling: Sampling,
    size: int,
    threads: str = "AUTO",
    skip_unneeded: bool = True,
    report: DecodeReport | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(pts_seconds, rgb uint8 array)`` sampled from ``[start, end)``, lazily.

    The shortest side of each frame is resized to ``size`` with swscale, and the picture is turned
    as the container says it is shown (:func:`upright`). In fps mode the
    first frame at or after each grid time ``k / fps`` is taken; in keyframes mode every
    keyframe is (and non-key frames are not even decoded). In fps mode, packets no sampled
    frame depends on are not decoded either (``skip_unneeded``, see :func:`_needed_packets`).
    A packet the decoder rejects (damaged data) is skipped and counted in ``report``; decoding
    goes on with the next packet, so the frames after a damaged stretch are not lost.
    """
    import av

    path = str(path)
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: not a readable video ({_av_error_text(e)})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = threads
        report = report if report is not None else DecodeReport()
        rate = stream.average_rate or stream.guessed_rate
        report.frame_interval = float(1 / rate) if rate else None
        if sampling.mode == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"
        try:
            seek_before(container, stream, start)
        except av.FFmpegError as e:
            raise VideoError(f"{path}: cannot seek to {start:.0f}s ({_av_error_text(e)})") from None
        targets = sampling.timestamps(start, end) if sampling.mode == "fps" else None
        frames = _frame_source(container, stream, targets, end, skip_unneeded, report)
        dims = None
        for t, frame in _on_grid(frames_between(frames, stream, start, end), targets):
            if dims is None:
                dims = resize_dims(frame.width, frame.height, size)
            yield round(t, 3), upright(frame, *dims)
    finally:
        container.close()


def _frame_source(container, stream, targets: list[float] | None, end: float, skip_unneeded: bool,
                  report: DecodeReport) -> Iterator:
    """Decoded frames of ``stream``, from only the packets the sampling needs when ``skip_unneeded``;
    damaged packets are skipped and counted in ``report`` (:func:`_decode`)."""
    tb, start_pts = stream.time_base, stream.start_time or 0
    if targets is not None and skip_unneeded and not stream.codec_context.has_b_frames:
        packets = _needed_packets(container.demux(stream), targets, start_pts, tb)
    elif targets is None and skip_unneeded:
        packets = _keyframe_packets(container.demux(stream), start_pts, tb, end)
    else:
        packets = container.demux(stream)
    return _decode(stream, packets, report)


def _on_grid(items: Iterator[tuple[float, object]], targets: list[float] | None) -> Iterator[tuple[float, object]]:
    """fps mode: the first frame at or after each grid time (taken once for every grid time it
    covers, so a low-fps source skips none); keyframes mode (``targets`` None): every frame."""
    if targets is None:
        yield from items
        return
    ti = 0
    for t, frame in items:
        if ti >= len(targets):
            return
        if t < targets[ti] - 1e-6:
            continue
        while ti < len(targets) and targets[ti] <= t + 1e-6:
            ti += 1
        yield t, frame


#: packets held while looking for the end of a GOP; a longer GOP is decoded whole (bounded memory)
GOP_LOOKAHEAD = 600


def _needed_packets(packets: Iterator, targets: list[float], start_pts: int, tb) -> Iterator:
    """The packets that fps sampling needs decoded, in decode order.

    Within a GOP (a keyframe packet up to the next one) a frame depends only on earlier packets
    of the GOP, so the packets after the GOP's last sampled frame are dropped, and a GOP with no
    sampled frame is dropped whole (at 1 fps with 2 s GOPs that halves decoding; below one
    frame per GOP only keyframes are decoded). Demuxing stops once every grid time is covered.
    Only GOPs whose packets carry strictly increasing timestamps are trimmed (no B-frame
    reordering, no open GOP); once a packet breaks that rule, everything is decoded.
    """
    import bisect

    ti = 0
    enabled = True
    prev = float("-inf")  # time of the last packet released
    gop: list = []

    def release(complete: bool) -> list:
        nonlocal ti, enabled, prev
        if not enabled:
            return gop
        if any(p.pts is None for p in gop):
            enabled = False
            return gop
        times = [float((p.pts - start_pts) * tb) for p in gop]
        if times[0] <= prev or any(b <= a for a, b in zip(times, times[1:])):
            enabled = False  # reordered frames: a later packet may be an earlier frame's reference
            return gop
        prev = times[-1]
        last_needed = -1
        while ti < len(targets) and targets[ti] <= times[-1] + 1e-6:
            last_needed = max(last_needed, bisect.bisect_left(times, targets[ti] - 1e-6))
            ti += 1
        if not complete or not gop[0].is_keyframe:
            return gop  # cannot tell where the GOP ends (or where it began): decode it all
        return gop[: last_needed + 1]

    for pkt in packets:
        if pkt.size == 0:  # the demuxer's end-of-stream packet; the caller flushes
            continue
        if pkt.is_keyframe and gop:
            yield from release(True)
            gop = []
            if enabled and ti >= len(targets):
                return  # every grid time is covered
        gop.append(pkt)
        if len(gop) >= GOP_LOOKAHEAD:
            yield from release(False)
            gop = []
    if gop:
        yield from release(True)


def _keyframe_packets(packets: Iterator, start_pts: int, tb, end: float) -> Iterator:
    """Keyframes mode: only the packets the container flags as keyframes reach the decoder (it
    skips the others anyway, but parsing them costs ~15%), up to the first one at or after ``end``.
    If the first packet is not flagged (a container without keyframe flags), every packet goes
    to the decoder, whose ``skip_frame="NONKEY"`` then does the selection."""
    first = True
    trust = True
    for pkt in packets:
        if pkt.size == 0:
            continue
        if first:
            trust, first = bool(pkt.is_keyframe), False
        if not trust:
            yield pkt
            continue
        if pkt.is_keyframe:
            yield pkt
            if pkt.pts is not None and float((pkt.pts - start_pts) * tb) >= end - 1e-6:
                return


def _decode(stream, packets: Iterator, report: DecodeReport) -> Iterator:
    """Decode packet by packet: a packet the decoder rejects is noted and skipped; a demuxer that
    cannot go on (a damaged container) ends the stream like its end would."""
    import av

    packets = iter(packets)
    while True:
        try:
            pkt = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as e:
            report.note(e)
            log.debug("demuxing stopped (%s)", _av_error_text(e))
            break
        try:
            frames = stream.decode(pkt)
        except av.FFmpegError as e:
            report.note(e)
            log.debug("skipped a damaged packet at pts %s (%s)", pkt.pts, _av_error_text(e))
            continue
        yield from frames
    try:
        yield from stream.decode(None)  # flush: frames the decoder (and its threads) still hold
    except av.FFmpegError as e:
        report.note(e)


def read_frame_at(path: str | os.PathLike, t: float, max_side: int = 480) -> np.ndarray:
    """One RGB frame at (or just after) ``t`` seconds, for thumbnails. Raises VideoError."""
    import av

    path = str(path)
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            start_pts = stream.start_time or 0
            seek_before(container, stream, t)
            best = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                best = frame
                if float((frame.pts - start_pts) * tb) >= t - 1e-3:
                    break
            if best is None:
                raise VideoError(f"{path}: no frame at {t:.1f}s")
            scale = min(1.0, max_side / max(best.width, best.height))
            w = max(2, int(best.width * scale) // 2 * 2)
            h = max(2, int(best.height * scale) // 2 * 2)
            return upright(best, w, h)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, IndexError) as e:
        raise VideoError(f"{path}: cannot read a frame at {t:.1f}s ({_av_error_text(e)})") from None


def file_signature(path: str | os.PathLike) -> tuple[int, int]:
    """(size, mtime_ns): cheap change detection before re-hashing a file."""
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns
