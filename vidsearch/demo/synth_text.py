"""Synthetic videos with text rendered into the picture at known times (PIL + PyAV).

For the OCR channel's tests, demo and benchmarks: ``make_text_video(path, [(2, 5, "EMERGENCY
EXIT"), (7, 9, "FRESH BREAD")], duration=10)`` writes an H.264 MP4 whose frames show each
text on a sign-like panel while ``start <= t < end``, over a slowly moving background.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from vidsearch.settings import current

#: Fonts tried in order (the first that exists wins); ``$VIDSEARCH_FONT`` goes first.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:/Windows/Fonts/arialbd.ttf",
)


@dataclasses.dataclass(frozen=True)
class TextSegment:
    """``text`` is visible while ``start <= t < end``.

    ``position``: top-left corner of the panel as fractions of the frame (default: centred
    horizontally, stacked by the segment's index). ``font_size`` in pixels (default: 1/9 of the
    frame height). Colours are RGB 0..255.
    """

    start: float
    end: float
    text: str
    position: tuple[float, float] | None = None
    font_size: int | None = None
    colour: tuple[int, int, int] = (255, 255, 255)
    panel: tuple[int, int, int] | None = (16, 120, 56)


def _matplotlib_font() -> str | None:
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        return str(p) if p.is_file() else None
    except Exception:
        return None


def find_font_file() -> str | None:
    """A TrueType font file available here, or None (then Pillow's built-in font is used)."""
    env = current().font
    for cand in ([env] if env else []) + list(FONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return cand
    return _matplotlib_font()


@lru_cache(maxsize=16)
def load_font(size: int):
    """A scalable font at ``size`` px: a TrueType file found here, else Pillow's own
    (``ImageFont.load_default(size=...)``, scalable since Pillow 10.1 with FreeType)."""
    from PIL import ImageFont

    path = find_font_file()
    if path:
        return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, too small to OCR reliably
        return ImageFont.load_default()


def render_panel(seg: TextSegment, frame_h: int) -> np.ndarray:
    """The segment's text on its panel, RGBA uint8 [h, w, 4]."""
    from PIL import Image, ImageDraw

    size = seg.font_size or max(12, frame_h // 9)
    font = load_font(size)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), seg.text, font=font)
    pad = max(4, size // 3)
    w, h = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    img = Image.new("RGBA", (w, h), (*seg.panel, 255) if seg.panel else (0, 0, 0, 0))
    ImageDraw.Draw(img).text((pad - x0, pad - y0), seg.text, font=font, fill=(*seg.colour, 255))
    return np.asarray(img)


def _placements(segments: Sequence[TextSegment], w: int, h: int, panels: list[np.ndarray]) -> list[tuple[int, int]]:
    out = []
    for i, (seg, panel) in enumerate(zip(segments, panels)):
        ph, pw = panel.shape[:2]
        if seg.position is not None:
            x, y = int(seg.position[0] * w), int(seg.position[1] * h)
        else:
            x = (w - pw) // 2
            y = int(h * (0.12 + 0.28 * (i % 3)))
        out.append((max(0, min(x, w - pw)), max(0, min(y, h - ph))))
    return out


def _paste(img: np.ndarray, panel: np.ndarray, x: int, y: int) -> None:
    ph, pw = panel.shape[:2]
    ph, pw = min(ph, img.shape[0] - y), min(pw, img.shape[1] - x)
    if ph <= 0 or pw <= 0:
        return
    p = panel[:ph, :pw]
    alpha = p[..., 3:4].astype(np.float32) / 255.0
    region = img[y : y + ph, x : x + pw].astype(np.float32)
    img[y : y + ph, x : x + pw] = (p[..., :3] * alpha + region * (1 - alpha)).round().astype(np.uint8)


def _background(i: int, w: int, h: int, base: np.ndarray) -> np.ndarray:
    """A dark diagonal gradient that drifts with the frame index, plus a moving grey block."""
    shift = (i * 2) % (w + h)
    ramp = ((np.arange(w)[None, :] + np.arange(h)[:, None] + shift) % (w + h)) / (w + h)
    img = (base[None, None, :] * (0.6 + 0.4 * ramp[..., None])).astype(np.uint8)
    sq = max(6, h // 10)
    x = (i * 4) % max(1, w - sq)
    img[h - 2 * sq : h - sq, x : x + sq] = 150
    return img


def make_text_video(
    path: str | Path,
    segments: Iterable[TextSegment | tuple],
    duration: float,
    size: tuple[int, int] = (640, 360),
    fps: int = 5,
    codec: str = "libx264",
    gop: int | None = None,
    crf: int = 20,
    background: tuple[int, int, int] = (70, 80, 100),
    scenes: Iterable[tuple[float, float, str | tuple[int, int, int]]] = (),
    creation_time: str | None = None,
) -> Path:
    """Write an MP4 showing each segment's text while ``start <= t < end``; return its path.

    ``segments``: :class:`TextSegment` or tuples ``(start_s, end_s, text[, position[, font_size]])``.
    ``gop`` defaults to 2 seconds of frames. ``crf``: x264 quality (lower = sharper text).
    ``scenes``: ``(start_s, end_s, colour)``: while ``start <= t < end`` the background is that flat
    colour (a name from :data:`vidsearch.demo.synth.COLOURS` or RGB 0..255), as :func:`vidsearch.demo.synth.make_video`
    draws scenes, so the colours-only demo model can find them (a cut, for the OCR channel).
    ``creation_time``: the container's creation time tag (ISO 8601), for --after/--before.
    """
    segs = [s if isinstance(s, TextSegment) else TextSegment(*s) for s in segments]
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    panels = [render_panel(s, h) for s in segs]
    places = _placements(segs, w, h, panels)
    base = np.asarray(background, dtype=np.float32)
    flat = [(float(a), float(b), _scene_rgb(c)) for a, b, c in scenes]

    def frames():
        for i in range(int(round(duration * fps))):
            t = i / fps
            img = _background(i, w, h, base)
            for a, b, rgb in flat:
                if a <= t < b:
                    img[:] = rgb
                    sq = max(6, h // 10)
                    x = (i * 4) % max(1, w - sq)
                    img[h - 2 * sq : h - sq, x : x + sq] = 150
            for seg, panel, (x, y) in zip(segs, panels, places):
                if seg.start <= t < seg.end:
                    _paste(img, panel, x, y)
            yield img

    from vidsearch.demo.synth import X264_FAST, write_video

    options = {**X264_FAST, "crf": str(crf)} if codec == "libx264" else None
    meta = {"creation_time": creation_time} if creation_time else None
    return write_video(path, frames(), size, fps, codec=codec, gop=gop, options=options, metadata=meta)


def _scene_rgb(colour: str | Sequence[int]) -> np.ndarray:
    if isinstance(colour, str):
        from vidsearch.demo.synth import _rgb

        return _rgb(colour)
    return np.asarray(colour, dtype=np.uint8)


def render_text_frame(texts: Sequence[str | TextSegment], size: tuple[int, int] = (640, 360),
                      i: int = 0, background: tuple[int, int, int] = (70, 80, 100)) -> np.ndarray:
    """One RGB frame [H, W, 3] showing ``texts`` as :func:`make_text_video` would draw them."""
    segs = [s if isinstance(s, TextSegment) else TextSegment(0.0, 1.0, s) for s in texts]
    w, h = size
    panels = [render_panel(s, h) for s in segs]
    img = _background(i, w, h, np.asarray(background, dtype=np.float32))
    for panel, (x, y) in zip(panels, _placements(segs, w, h, panels)):
        _paste(img, panel, x, y)
    return img
