"""Synthetic videos with known content at known times (PyAV), for the demo, tests and benchmarks.

A video is a list of scenes ``(start_s, end_s, colour)``; between scenes the background is
grey. A small white square moves across the frame so that consecutive frames differ. With
``audio`` (an encoder name), the file also has a sound track: a 440 Hz tone while a scene is on
screen, silence otherwise, so a test can check that sound and picture stay together.
"""
from __future__ import annotations

import dataclasses
import fractions
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from vidsearch.demo.models import COLOURS

BACKGROUND = "gray"
X264_FAST = {"preset": "ultrafast", "tune": "zerolatency"}


@dataclasses.dataclass(frozen=True)
class Scene:
    start: float
    end: float
    colour: str


def _rgb(colour: str | Sequence[float]) -> np.ndarray:
    c = COLOURS[colour] if isinstance(colour, str) else colour
    return (np.asarray(c, dtype=np.float32) * 255).round().astype(np.uint8)


def make_video(
    path: str | Path,
    duration: float,
    scenes: Iterable[Scene | tuple[float, float, str]] = (),
    size: tuple[int, int] = (160, 120),
    fps: int = 10,
    codec: str = "libx264",
    gop: int | None = None,
    background: str = BACKGROUND,
    seed: int = 0,
    creation_time: str | None = None,
    container_options: dict[str, str] | None = None,
    audio: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write an H.264 MP4 (or what the extension says: ``.ts`` MPEG-TS, ``.mkv``) and return its path.
    ``gop`` defaults to 2 seconds of frames; ``container_options``: the muxer's (``movflags=faststart``);
    ``audio``: an audio encoder (``aac``, ``mp2``, ``pcm_s16le``...) for a tone during the scenes;
    ``options``: the video encoder's (see ``write_video``)."""
    scenes = [s if isinstance(s, Scene) else Scene(*s) for s in scenes]
    w, h = size
    rng = np.random.default_rng(seed)
    bg = _rgb(background)
    sq = max(4, min(w, h) // 8)
    noise = rng.integers(-6, 7, size=(h, w, 1), dtype=np.int16)

    def frames() -> Iterator[np.ndarray]:
        for i in range(int(round(duration * fps))):
            t = i / fps
            colour = bg
            for s in scenes:
                if s.start <= t < s.end:
                    colour = _rgb(s.colour)
            img = np.clip(np.broadcast_to(colour, (h, w, 3)).astype(np.int16) + noise, 0, 255).astype(np.uint8)
            x = int((i * 3) % max(1, w - sq))
            img[h // 2 - sq // 2 : h // 2 + sq // 2, x : x + sq] = 255
            yield img

    def tone(t: float) -> bool:
        return any(s.start <= t < s.end for s in scenes)

    meta = {"creation_time": creation_time} if creation_time else None
    return write_video(path, frames(), size, fps, codec=codec, gop=gop, options=options, metadata=meta,
                       container_options=container_options, audio=(audio, tone) if audio else None)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    size: tuple[int, int],
    fps: int,
    codec: str = "libx264",
    gop: int | None = None,
    options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    audio: tuple[str, Callable[[float], bool]] | None = None,
    rotation: int = 0,
) -> Path:
    """Encode RGB frames (one per 1/fps) into a video file; ``gop`` defaults to 2 seconds of frames.
    ``rotation``: the display turn (degrees counter-clockwise) the container records, as a phone's
    portrait video does; the frames are stored as given.

    ``options`` are the encoder's; libx264 without options gets ``preset=ultrafast, tune=zerolatency``
    (fast, no B-frames). ``audio``: ``(encoder, on)``, a 48 kHz mono track, 440 Hz wherever ``on(t)``.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    with av.open(str(path), mode="w", options=dict(container_options or {})) as out:
        for k, v in (metadata or {}).items():
            out.metadata[k] = v
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.gop_size = gop or 2 * fps
        if options is None and codec == "libx264":
            options = X264_FAST
        if options:
            stream.options = dict(options)
        stream.time_base = fractions.Fraction(1, fps)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = _Tone(out, *audio) if audio else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            if sound:
                sound.write_until((i + 1) / fps)
        for packet in stream.encode():
            out.mux(packet)
        if sound:
            sound.close()
    return path


class _Tone:
    """A mono 48 kHz track: 440 Hz at a third of full scale where ``on(t)``, silence elsewhere."""

    RATE = 48000

    def __init__(self, out, codec: str, on: Callable[[float], bool]):
        self.out, self.on, self.written = out, on, 0
        self.stream = out.add_stream(codec, rate=self.RATE, layout="mono")

    def write_until(self, t: float) -> None:
        import av

        n = int(round(t * self.RATE)) - self.written
        if n <= 0:
            return
        ts = (self.written + np.arange(n)) / self.RATE
        gate = np.fromiter((self.on(x) for x in ts[::480]), bool).repeat(480)[:n]  # decided per 10 ms
        x = np.where(gate, np.sin(2 * np.pi * 440 * ts) / 3, 0).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = self.RATE, self.written
        frame.time_base = fractions.Fraction(1, self.RATE)
        self.written += n
        self._encode(frame)  # PyAV converts to the encoder's sample format and frame size

    def _encode(self, frame) -> None:
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def close(self) -> None:
        self._encode(None)


#: The demo archive: file name -> (duration, scenes). Times are what `vidsearch query` should find.
#: Each file carries the creation time its name says (``2026-11-02_0900`` -> 2026-11-02T09:00:00Z),
#: so ``--after/--before`` and the recorded times of ``events`` and ``export`` can be tried too.
DEMO_ARCHIVE: dict[str, tuple[float, list[tuple[float, float, str]]]] = {
    "cam-lobby/2026-11-02_0800.mp4": (90.0, [(20.0, 35.0, "red"), (60.0, 70.0, "blue")]),
    "cam-lobby/2026-11-02_0900.mp4": (75.0, [(5.0, 12.0, "yellow"), (40.0, 52.0, "red")]),
    "cam-street/2026-11-02_0800.mp4": (120.0, [(30.0, 45.0, "green"), (95.0, 110.0, "orange")]),
}


def demo_creation_time(rel: str) -> str:
    """The recording start a demo file's name says: ``cam-lobby/2026-11-02_0900.mp4`` -> ``2026-11-02T09:00:00Z``."""
    day, hhmm = Path(rel).stem.split("_")
    return f"{day}T{hhmm[:2]}:{hhmm[2:]}:00Z"


def make_demo_archive(root: str | Path, size: tuple[int, int] = (320, 180)) -> list[Path]:
    root = Path(root)
    out = []
    for i, (rel, (duration, scenes)) in enumerate(sorted(DEMO_ARCHIVE.items())):
        out.append(make_video(root / rel, duration, scenes, size=size, seed=i, creation_time=demo_creation_time(rel)))
    return out


@dataclasses.dataclass(frozen=True)
class Spot:
    """A small square of ``colour`` covering ``area`` of the frame, centred at ``centre`` (fractions)."""

    start: float
    end: float
    colour: str
    centre: tuple[float, float] = (0.78, 0.22)
    area: float = 0.03


def make_spot_video(
    path: str | Path,
    duration: float,
    spots: Iterable[Spot] = (),
    tints: Iterable[tuple[float, float, str, float]] = (),
    size: tuple[int, int] = (320, 180),
    fps: int = 10,
    background: str = BACKGROUND,
    seed: int = 0,
) -> Path:
    """A still grey scene with small coloured squares (``spots``) and whole-frame colour casts
    (``tints``: ``(start, end, colour, strength)``, the background mixed that much towards the
    colour) at known times: what whole-frame embeddings miss and region embeddings find."""
    spots, tints = list(spots), list(tints)
    w, h = size
    noise = np.random.default_rng(seed).integers(-6, 7, size=(h, w, 1), dtype=np.int16)
    bg = _rgb(background).astype(np.float32)

    def frames() -> Iterator[np.ndarray]:
        for i in range(int(round(duration * fps))):
            t = i / fps
            base = bg
            for start, end, colour, k in tints:
                if start <= t < end:
                    base = (1 - k) * bg + k * _rgb(colour)
            img = np.clip(np.broadcast_to(base.round().astype(np.int16), (h, w, 3)) + noise, 0, 255).astype(np.uint8)
            for s in spots:
                if s.start <= t < s.end:
                    side = max(2, int(round((s.area * w * h) ** 0.5)))
                    x0, y0 = int(s.centre[0] * w) - side // 2, int(s.centre[1] * h) - side // 2
                    img[max(0, y0) : y0 + side, max(0, x0) : x0 + side] = _rgb(s.colour)
            yield img

    return write_video(path, frames(), size, fps)
