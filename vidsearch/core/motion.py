"""Did the picture change? One detector for motion-gated embedding and the OCR channel's cuts.

Pure numpy. A frame (uint8 RGB, any size) becomes a **thumbnail**: area-averaged to at most
:data:`GRID` cells (rows x columns), then a tiny [1 2 1] blur, float32 RGB in 0..1. Averaging
~30x30 pixels per cell (1080p) or ~6x6 (a 224 px model crop) drowns sensor noise and H.264
block artefacts before anything is compared.

Two thumbnails are compared by :func:`compare` (the rule, documented in ``docs/motion.md``):

1. **gain**: lighting drift, flicker and auto-exposure scale the whole picture. The gain is the
   median over cells of ``luma(new) / luma(old)`` (cells darker than 4 % are skipped); a moving
   subject covering less than half the picture does not move the median. ``old`` is scaled by it.
2. a gain beyond ``max_gain`` (or below ``1 / max_gain``) is a change by itself: lights switched
   on or off, a camera going to night mode.
3. per cell, the largest absolute RGB difference between ``new`` and the scaled ``old``
   (clipped at white, as the camera clips).
   Colour counts, not only luma: a red figure on a grey wall of equal brightness is seen.
4. a cell **changed** when that difference exceeds ``threshold``, raised to ``noise_k`` times
   the pair's noise floor (1.4826 x the median cell difference: robust while less than half
   the cells move) for a very noisy source, but never above ``2 x threshold`` (when everything
   moves the median is no noise floor);
5. the picture **changed** when the fraction of changed cells is at least ``min_area``.

:class:`MotionGate` applies it to a stream of sampled frames: embed the first frame, embed a
frame whose picture changed since the *last embedded* frame (so slow changes accumulate until
they count), and embed the first frame of every ``max_reuse_s`` period of video time (periods
anchored at t = 0), so daylight and other slow drift is re-captured and a chunk whose start is a
multiple of ``max_reuse_s`` decides exactly as one long pass would. Every other frame reuses the
last embedding. :data:`GATE` and :data:`CUT` are the parameters for gating and for the OCR
channel's scene cuts.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator

import numpy as np

GRID = (36, 64)  # at most this many rows x columns of cells
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
DARK = 0.04  # cells darker than this do not vote on the gain
MAD_SIGMA = 1.4826  # median absolute deviation -> standard deviation (normal noise)


@dataclasses.dataclass(frozen=True)
class MotionParams:
    """What counts as a change (see the module docstring for the rule)."""

    threshold: float = 0.06  # per-cell |RGB difference| (0..1) after gain normalisation
    min_area: float = 0.004  # fraction of cells that must change
    max_gain: float = 1.5  # a global brightness ratio beyond this is a change by itself
    noise_k: float = 4.0  # a changed cell also exceeds noise_k x the frame's noise floor


#: Motion gating: a person-sized subject far from the camera (~1/250 of the picture) counts.
GATE = MotionParams()
#: Scene cuts for the OCR channel: most of the picture changed at once.
CUT = MotionParams(threshold=0.12, min_area=0.5, max_gain=2.0, noise_k=0.0)


@dataclasses.dataclass(frozen=True)
class Change:
    """How two thumbnails differ: the verdict and the figures behind it."""

    changed: bool
    area: float  # fraction of cells changed
    gain: float  # brightness ratio new / old that was normalised away
    noise: float  # the frame's noise floor estimate (per-cell difference)
    mean_abs: float  # mean per-cell difference after gain normalisation


def thumbnail(frame: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """uint8 HxWx3 (or HxW grey) -> float32 [rows, cols, 3] in 0..1: area average, then blur.

    Cells are whole blocks of ``ceil(H / grid rows) x ceil(W / grid cols)`` pixels, so there are
    at most ``grid`` of them (portrait frames swap it) and a smaller frame keeps one cell per
    pixel; the few pixel rows and columns left over are dropped evenly at the edges.
    """
    img = np.asarray(frame)
    if img.ndim == 2:
        img = img[:, :, None]
    img = img[:, :, :3]
    h, w, c = img.shape
    if h == 0 or w == 0:
        raise ValueError("frame has no pixels")
    rows, cols = grid if w >= h else grid[::-1]
    cy, cx = -(-h // rows), -(-w // cols)
    rows, cols = h // cy, w // cx
    y0, x0 = (h - rows * cy) // 2, (w - cols * cx) // 2
    band = np.ascontiguousarray(img[y0: y0 + rows * cy]).reshape(rows, cy, w * c).sum(axis=1, dtype=np.uint32)
    sums = band.reshape(rows, w, c)[:, x0: x0 + cols * cx].reshape(rows, cols, cx, c).sum(axis=2)
    th = sums.astype(np.float32) * np.float32(1.0 / (cy * cx * 255.0))
    if c == 1:
        th = np.repeat(th, 3, axis=2)
    return _blur(th)


def _blur(th: np.ndarray) -> np.ndarray:
    """[1 2 1] / 4 along both axes, edges repeated."""
    for axis in (0, 1):
        if th.shape[axis] < 3:
            continue
        p = np.concatenate([th.take([0], axis), th, th.take([-1], axis)], axis=axis)
        n = th.shape[axis]
        th = 0.25 * p.take(range(0, n), axis) + 0.5 * th + 0.25 * p.take(range(2, n + 2), axis)
    return th.astype(np.float32, copy=False)


def gain_between(old: np.ndarray, new: np.ndarray) -> float:
    """Median over cells of luma(new) / luma(old), cells darker than :data:`DARK` skipped; 1 if none."""
    yo, yn = old @ LUMA, new @ LUMA
    lit = yo > DARK
    if not lit.any():
        return 1.0
    return float(np.median(yn[lit] / yo[lit]))


def compare(old: np.ndarray, new: np.ndarray, params: MotionParams = GATE) -> Change:
    """Did the picture change from thumbnail ``old`` to thumbnail ``new``? (the module's rule)"""
    if old.shape != new.shape:
        return Change(True, 1.0, 1.0, 0.0, 1.0)
    gain = gain_between(old, new)
    diff = np.abs(new - np.minimum(old * np.float32(gain), 1.0)).max(axis=2)
    noise = MAD_SIGMA * float(np.median(diff))
    cell = min(max(params.threshold, params.noise_k * noise), 2 * params.threshold)
    area = float(np.mean(diff > cell))
    big_step = not (1.0 / params.max_gain <= gain <= params.max_gain)
    return Change(big_step or area >= params.min_area, area, gain, noise, float(diff.mean()))


def changed(old: np.ndarray | None, new: np.ndarray | None, params: MotionParams = GATE) -> bool:
    """:func:`compare`'s verdict; a missing thumbnail on either side is a change."""
    if old is None or new is None:
        return True
    return compare(old, new, params).changed


class MotionGate:
    """Stateful gate over one stream of sampled frames, in time order: embed or reuse?

    ``decide(t, frame)`` returns True when the frame must go through the image encoder, False
    when it may reuse the embedding of the last frame for which it returned True.
    """

    def __init__(self, threshold: float = GATE.threshold, min_area: float = GATE.min_area,
                 max_reuse_s: float = 60.0, max_gain: float = GATE.max_gain, noise_k: float = GATE.noise_k):
        if max_reuse_s <= 0:
            raise ValueError("max_reuse_s must be positive")
        self.params = MotionParams(threshold, min_area, max_gain, noise_k)
        self.max_reuse_s = float(max_reuse_s)
        self.ref: np.ndarray | None = None  # thumbnail of the last embedded frame
        self.ref_t: float | None = None
        self.last: Change | None = None  # the last comparison (None after a forced embed)
        self.embedded = 0
        self.reused = 0

    def period(self, t: float) -> int:
        """Index of the ``max_reuse_s`` period holding time ``t`` (anchored at 0)."""
        return math.floor(t / self.max_reuse_s + 1e-9)

    def decide(self, t: float, frame: np.ndarray) -> bool:
        th = thumbnail(frame)
        self.last = None
        if self.ref is None or self.period(t) != self.period(self.ref_t):
            embed = True
        else:
            self.last = compare(self.ref, th, self.params)
            embed = self.last.changed
        if embed:
            self.ref, self.ref_t = th, float(t)
            self.embedded += 1
        else:
            self.reused += 1
        return embed

    @property
    def fraction_embedded(self) -> float:
        n = self.embedded + self.reused
        return self.embedded / n if n else 0.0


def gate_frames(frames: Iterable[tuple[float, np.ndarray]], gate: MotionGate) -> Iterator[tuple[float, np.ndarray, bool]]:
    """``(t, frame)`` -> ``(t, frame, embed)`` through ``gate``."""
    for t, frame in frames:
        yield t, frame, gate.decide(t, frame)


def reuse_sources(embed: Iterable[bool]) -> np.ndarray:
    """For each sampled frame, the index of the frame whose embedding it carries.

    ``[True, False, False, True, False] -> [0, 0, 0, 3, 3]``; the first decision must be True.
    """
    flags = np.asarray(list(embed), dtype=bool)
    if len(flags) and not flags[0]:
        raise ValueError("the first sampled frame must be embedded")
    idx = np.where(flags, np.arange(len(flags)), 0)
    return np.maximum.accumulate(idx) if len(idx) else idx.astype(np.intp)


def expand(embedded: np.ndarray, embed: Iterable[bool]) -> np.ndarray:
    """Rows for every sampled frame from the rows of the embedded ones (in order): each frame
    carries the embedding of the last embedded frame at or before it."""
    flags = np.asarray(list(embed), dtype=bool)
    if len(flags) and not flags[0]:
        raise ValueError("the first sampled frame must be embedded")
    if int(flags.sum()) != len(embedded):
        raise ValueError(f"{len(embedded)} embeddings for {int(flags.sum())} embedded frames")
    return embedded[np.cumsum(flags) - 1] if len(flags) else embedded[:0]
