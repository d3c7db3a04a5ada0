"""CCTV-like synthetic footage with a known subject, for motion-gating tests and benchmarks.

A fixed camera looking at a textured scene (walls, a door, windows, floor tiles, fine grain: not
flat colour), with per-frame sensor noise, slow lighting drift (the gain dips by ``drift`` at
mid-video, like a cloud or dusk), optional flicker and brightness steps, encoded with H.264 at a
camera-like quality (CRF 28, a keyframe every 2 s, no B-frames). A red figure comes out of the
door, walks about and goes back in during known intervals (about 10 % of the time by default);
it stays inside the centre square, the part the image encoder sees. ``pan`` makes the camera
sweep across a wider scene instead: everything moves (gating must cost nothing there).

Frames are built directly in YUV 4:2:0 (no RGB conversion per frame) and the noise comes from
a small bank of precomputed planes, so 20 minutes of 1080p at 5 fps take a few minutes.
"""
from __future__ import annotations

import dataclasses
import fractions
import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vidsearch.demo.models import COLOURS

NOISE_BANK = 6
CAMERA_X264 = {"preset": "veryfast", "tune": "zerolatency", "crf": "28"}


@dataclasses.dataclass(frozen=True)
class Footage:
    """A generated file and its ground truth."""

    path: Path
    duration: float
    size: tuple[int, int]
    fps: int
    subject: list[tuple[float, float]]  # (start, end) seconds while the figure is in view
    colour: str
    pan: float

    @property
    def subject_fraction(self) -> float:
        return sum(e - s for s, e in self.subject) / self.duration if self.duration else 0.0

    def subject_at(self, t: float) -> bool:
        return any(s <= t < e for s, e in self.subject)


def subject_visits(duration: float, fraction: float = 0.1, visit_s: float = 20.0, seed: int = 0) -> list[tuple[float, float]]:
    """Visits covering ``fraction`` of ``duration``: one per equal slot, at a random place in it."""
    if fraction <= 0 or duration <= 0:
        return []
    n = max(1, round(duration * fraction / visit_s))
    length = duration * fraction / n
    slot = duration / n
    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(n):
        start = i * slot + float(rng.uniform(0.1, 0.9)) * (slot - length)
        out.append((round(start, 1), round(start + length, 1)))
    return out


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB 0..1 -> BT.601 limited range Y (0..219 above 16) and centred Cb, Cr (what swscale assumes)."""
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], np.float32)
    return rgb.astype(np.float32) @ m.T


def _blobs(rng, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in -1..1 (a coarse grid upsampled bilinearly)."""
    gh, gw = cells + 1, max(2, round(cells * w / h)) + 1
    g = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    ys, xs = np.linspace(0, gh - 1, h, dtype=np.float32), np.linspace(0, gw - 1, w, dtype=np.float32)
    y0, x0 = np.minimum(ys.astype(int), gh - 2), np.minimum(xs.astype(int), gw - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def scene(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A lobby-like textured RGB scene (float32 0..1, [h, w, 3]); the door is at :func:`door_x`."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    horizon = int(h * 0.62)
    img[:horizon] = (0.62, 0.58, 0.52)  # wall
    yy = np.arange(h - horizon, dtype=np.float32)[:, None] / max(1, h - horizon)
    img[horizon:] = (0.35, 0.36, 0.38)
    img[horizon:] *= (0.8 + 0.4 * yy)[..., None]  # floor gets lighter towards the camera
    tile = max(4, h // 12)
    ty, tx = np.meshgrid(np.arange(h - horizon), np.arange(w), indexing="ij")
    img[horizon:] *= (1 + 0.06 * (((ty // tile) + (tx // tile)) % 2))[..., None]
    for k in range(3):  # windows
        x0 = int(w * (0.05 + 0.33 * k))
        if abs((x0 + w * 0.1) - door_x(w, h)) < h * 0.25:
            continue
        img[int(h * 0.12): int(h * 0.42), x0: x0 + int(w * 0.16)] = (0.60, 0.66, 0.72)
        img[int(h * 0.12): int(h * 0.42), x0 + int(w * 0.08): x0 + int(w * 0.08) + max(1, h // 120)] = 0.3
    dx, dw = int(door_x(w, h)), max(2, int(h * 0.16))
    img[int(h * 0.25): horizon, dx - dw // 2: dx + dw // 2] = (0.32, 0.22, 0.15)  # door
    img[int(h * 0.20): int(h * 0.55), int(w * 0.62): int(w * 0.70)] = (0.25, 0.35, 0.30)  # notice board
    img *= (1 + 0.12 * _blobs(rng, h, w, 6))[..., None]  # uneven light, stains
    img += 0.035 * _blobs(rng, h, w, max(8, h // 6))[..., None]  # fine texture
    img += rng.normal(0, 0.015, (h, w, 1)).astype(np.float32)  # grain of the surfaces
    return np.clip(img, 0.0, 1.0)


def door_x(w: int, h: int) -> float:
    return w / 2 - 0.3 * h


def _figure(h: int, scale: float = 0.34) -> np.ndarray:
    """Boolean mask of a standing figure (head + body + legs), ``scale`` x ``h`` tall."""
    fh = max(8, int(h * scale)) // 2 * 2
    fw = max(4, int(fh * 0.36)) // 2 * 2
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    r = fw * 0.22
    head = (yy - r * 1.1) ** 2 + (xx - fw / 2) ** 2 <= r * r
    body = (yy >= r * 2.1) & (yy < fh * 0.62) & (np.abs(xx - fw / 2) <= fw * 0.45)
    legs = (yy >= fh * 0.62) & ((np.abs(xx - fw * 0.32) <= fw * 0.12) | (np.abs(xx - fw * 0.68) <= fw * 0.12))
    return head | body | legs


def _figure_pos(t: float, visit: tuple[float, float], w: int, h: int, fig: np.ndarray) -> tuple[int, int]:
    """Top-left of the figure: out of the door, a walk to the right and back, a slight bob."""
    s, e = visit
    u = (t - s) / max(e - s, 1e-6)
    x = door_x(w, h) + 0.55 * h * math.sin(math.pi * u) - fig.shape[1] / 2
    y = h * 0.62 + 0.1 * max(0, fig.shape[0] - 0.34 * h) - fig.shape[0] * 0.9 + 0.01 * h * math.sin(2 * math.pi * (t - s))
    return int(np.clip(x, 0, w - fig.shape[1])) // 2 * 2, int(np.clip(y, 0, h - fig.shape[0])) // 2 * 2


@dataclasses.dataclass
class _Planes:
    y: np.ndarray  # float32, luma above 16
    u: np.ndarray  # float32, centred chroma at half resolution
    v: np.ndarray


def _planes(rgb: np.ndarray) -> _Planes:
    yuv = _rgb_to_yuv(rgb)
    h, w = rgb.shape[:2]
    half = yuv.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return _Planes(np.ascontiguousarray(yuv[:, :, 0]), np.ascontiguousarray(half[:, :, 1]), np.ascontiguousarray(half[:, :, 2]))


def _gain(t: float, duration: float, drift: float, steps: Sequence[tuple[float, float]], flicker: float, rng) -> float:
    g = 1.0 - drift * math.sin(math.pi * min(max(t / duration, 0.0), 1.0))
    for when, factor in steps:
        if t >= when:
            g *= factor
    if flicker:
        g *= 1.0 + float(rng.uniform(-flicker, flicker))
    return g


def _camera_stream(out, w: int, h: int, fps: int, crf: int, gop_s: float):
    """An H.264 stream encoded as a camera would (:data:`CAMERA_X264`, a keyframe every ``gop_s``)."""
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.gop_size = max(1, round(gop_s * fps))
    stream.options = {**CAMERA_X264, "crf": str(crf)}
    stream.time_base = fractions.Fraction(1, fps)
    return stream


def make_cctv(
    path: str | Path,
    duration: float = 60.0,
    size: tuple[int, int] = (320, 180),
    fps: int = 5,
    subject: Sequence[tuple[float, float]] | None = None,
    colour: str = "red",
    drift: float = 0.2,
    noise: float = 3.0,
    flicker: float = 0.0,
    steps: Sequence[tuple[float, float]] = (),
    pan: float = 0.0,
    figure: float = 0.34,
    crf: int = 28,
    gop_s: float = 2.0,
    seed: int = 0,
) -> Footage:
    """Write the footage (module docstring) and return it with its ground truth.

    ``subject``: visits ``(start, end)``; None: :func:`subject_visits` (~10 %). ``noise``: sensor
    noise sigma in 8-bit luma steps. ``steps``: ``(t, factor)`` brightness steps. ``pan``: camera
    sweep speed in frame widths per second (0: fixed camera). ``figure``: the
    subject's height as a fraction of the frame's (0.34: across the room; 0.6: near the camera).
    """
    import av

    w, h = size
    if w % 2 or h % 2:
        raise ValueError("width and height must be even")
    visits = list(subject_visits(duration, seed=seed) if subject is None else subject)
    span = w + (int(w * 0.6) // 2 * 2 if pan else 0)
    base = _planes(scene(span, h, seed))
    fig = _figure(h, figure)
    fig_yuv = _rgb_to_yuv(np.asarray(COLOURS[colour], np.float32))
    rng = np.random.default_rng(seed + 7)
    bank_y = rng.normal(0, noise, (NOISE_BANK, h, w)).astype(np.float32)
    bank_c = rng.normal(0, noise / 2, (NOISE_BANK, 2, h // 2, w // 2)).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        stream = _camera_stream(out, w, h, fps, crf, gop_s)
        for i in range(int(round(duration * fps))):
            t = i / fps
            off = _pan_offset(t, pan, w, span)
            g = _gain(t, duration, drift, steps, flicker, rng)
            y = base.y[:, off: off + w] * g
            u = base.u[:, off // 2: off // 2 + w // 2] * g
            v = base.v[:, off // 2: off // 2 + w // 2] * g
            visit = next((vs for vs in visits if vs[0] <= t < vs[1]), None)
            if visit is not None:
                _paste(y, u, v, fig, fig_yuv * g, _figure_pos(t, visit, w, h, fig))
            k = int(rng.integers(NOISE_BANK))
            frame = _frame(y + bank_y[k] + 16, u + bank_c[k, 0] + 128, v + bank_c[k, 1] + 128)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Footage(path, float(duration), (w, h), fps, visits, colour, pan)


def _pan_offset(t: float, pan: float, w: int, span: int) -> int:
    if not pan or span <= w:
        return 0
    travel = span - w
    pos = (t * pan * w) % (2 * travel)  # there and back
    return int(pos if pos <= travel else 2 * travel - pos) // 2 * 2


def _paste(y, u, v, fig: np.ndarray, yuv: np.ndarray, pos: tuple[int, int]) -> None:
    x0, y0 = pos
    fh, fw = fig.shape
    y[y0: y0 + fh, x0: x0 + fw][fig] = yuv[0]
    half = fig[::2, ::2]
    u[y0 // 2: y0 // 2 + fh // 2, x0 // 2: x0 // 2 + fw // 2][half] = yuv[1]
    v[y0 // 2: y0 // 2 + fh // 2, x0 // 2: x0 // 2 + fw // 2][half] = yuv[2]


def _frame(y: np.ndarray, u: np.ndarray, v: np.ndarray):
    import av

    h, w = y.shape
    planes = np.concatenate([
        np.clip(y, 0, 255).astype(np.uint8).reshape(-1),
        np.clip(u, 0, 255).astype(np.uint8).reshape(-1),
        np.clip(v, 0, 255).astype(np.uint8).reshape(-1),
    ])
    return av.VideoFrame.from_ndarray(planes.reshape(h * 3 // 2, w), format="yuv420p")


def make_moving(path: str | Path, duration: float = 60.0, size: tuple[int, int] = (320, 180), fps: int = 5,
                pan: float = 0.05, **kw) -> Footage:
    """The same scene with the camera sweeping all the time: every sampled frame differs."""
    return make_cctv(path, duration, size, fps, pan=pan, **kw)


def sample_frames(n: int = 200, size: tuple[int, int] = (320, 180), scenes: int = 8, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` varied RGB uint8 stills (no video file): random crops of a few scenes under random
    light, with a figure of a random colour at a random place in about half of them."""
    w, h = size
    rng = np.random.default_rng(seed)
    bases = [scene(int(w * 1.5), int(h * 1.2), seed + s) * rng.uniform(0.75, 1.25, 3).astype(np.float32)
             for s in range(scenes)]  # each scene its own tint
    fig = _figure(h)
    names = list(COLOURS)
    for i in range(n):
        base = bases[i % scenes]
        y0, x0 = int(rng.integers(0, base.shape[0] - h + 1)), int(rng.integers(0, base.shape[1] - w + 1))
        img = base[y0: y0 + h, x0: x0 + w] * float(rng.uniform(0.6, 1.2))
        if rng.random() < 0.5:
            fy, fx = int(rng.integers(0, h - fig.shape[0] + 1)), int(rng.integers(0, w - fig.shape[1] + 1))
            img[fy: fy + fig.shape[0], fx: fx + fig.shape[1]][fig] = COLOURS[names[int(rng.integers(len(names)))]]
        img = img + rng.normal(0, 0.012, img.shape[:2] + (1,))
        yield (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
