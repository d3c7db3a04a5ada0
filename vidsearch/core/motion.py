"""Did the picture change? One detector for motion-gated embedding and the OCR channel's cuts.

Pure numpy. A frame becomes a small area-averaged, lightly blurred RGB **thumbnail** (at most
:data:`GRID` cells), which drowns sensor noise and compression artefacts; :func:`compare` then
normalises the global gain (lighting drift, flicker, auto-exposure), counts the cells whose
colour changed by more than a threshold above the noise floor, and calls the picture changed
when enough of them did (or when the gain, or the whole picture's mean colour, moved too far). :class:`MotionGate` embeds the first frame, every frame that changed
since the last embedded one, and the first frame of every ``max_reuse_s`` period (so slow drift
is re-captured and chunks decide as one pass would). :data:`GATE` and :data:`CUT` are the
parameters for gating and for OCR scene cuts. The rule, step by step: ``docs/motion.md``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator, Sequence

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
    #: a mean colour shift of the whole picture (per channel, after gain normalisation) beyond this
    #: is a change by itself: a colour cast or white-balance change too faint for any one cell (0: off)
    max_shift: float = 0.02


#: Motion gating: a person-sized subject far from the camera (~1/250 of the picture) counts.
GATE = MotionParams()
#: Scene cuts for the OCR channel: most of the picture changed at once.
CUT = MotionParams(threshold=0.12, min_area=0.5, max_gain=2.0, noise_k=0.0, max_shift=0.0)


@dataclasses.dataclass(frozen=True)
class Change:
    """How two thumbnails differ: the verdict and the figures behind it."""

    changed: bool
    area: float  # fraction of cells changed
    gain: float  # brightness ratio new / old that was normalised away
    noise: float  # the frame's noise floor estimate (per-cell difference)
    mean_abs: float  # mean per-cell difference after gain normalisation
    shift: float = 0.0  # the largest per-channel mean (signed) difference after gain normalisation


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
    signed = new - np.minimum(old * np.float32(gain), 1.0)
    diff = np.abs(signed).max(axis=2)
    noise = MAD_SIGMA * float(np.median(diff))
    cell = min(max(params.threshold, params.noise_k * noise), 2 * params.threshold)
    area = float(np.mean(diff > cell))
    big_step = not (1.0 / params.max_gain <= gain <= params.max_gain)
    shift = float(np.abs(signed.mean(axis=(0, 1))).max())
    cast = params.max_shift > 0 and shift > params.max_shift
    return Change(big_step or cast or area >= params.min_area, area, gain, noise, float(diff.mean()), shift)


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
                 max_reuse_s: float = 60.0, max_gain: float = GATE.max_gain, noise_k: float = GATE.noise_k,
                 max_shift: float = GATE.max_shift):
        if max_reuse_s <= 0:
            raise ValueError("max_reuse_s must be positive")
        self.params = MotionParams(threshold, min_area, max_gain, noise_k, max_shift)
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

    def settings(self) -> dict:
        """The rule's parameters, as a chunk's done marker records them."""
        return {**dataclasses.asdict(self.params), "max_reuse_s": self.max_reuse_s}

    @property
    def fraction_embedded(self) -> float:
        n = self.embedded + self.reused
        return self.embedded / n if n else 0.0


def reuse_period(chunk_s: float, max_reuse_s: float = 60.0) -> float:
    """The forced-refresh period of a gate that runs per chunk of ``chunk_s`` seconds: the
    largest divisor ``chunk_s / k`` (k a whole number) that is at most ``max_reuse_s``, so every
    chunk start is a period start and chunks decide exactly as one pass over the file with the
    same period would (60 s chunks: 60; 90 s: 45; 30 s: 30; 600 s: 60)."""
    if chunk_s <= 0 or max_reuse_s <= 0:
        raise ValueError("chunk_s and max_reuse_s must be positive")
    return chunk_s / math.ceil(chunk_s / max_reuse_s - 1e-9)


class RegionGates:
    """A :class:`MotionGate` per region of a frame (``--regions``: the whole frame, then the
    tiles), each seeing what the encoder sees of its region: ``decide(t, crops)`` says, region by
    region, whether the crop changed since that region's own last embedded crop. A subject
    moving in one part of the picture re-embeds the regions that see it and leaves the others'
    embeddings reused. Every region refreshes at the same period starts. One region: the frame
    gate as it is."""

    def __init__(self, regions: int = 1, **gate):
        self.gates = [MotionGate(**gate) for _ in range(regions)]

    def decide(self, t: float, crops: Sequence[np.ndarray]) -> list[bool]:
        if len(crops) != len(self.gates):
            raise ValueError(f"{len(crops)} crops for {len(self.gates)} regions")
        return [g.decide(t, c) for g, c in zip(self.gates, crops)]

    def settings(self) -> dict:
        """The rule's parameters, as a chunk's done marker records them (``per_region`` with regions)."""
        return {**self.gates[0].settings(), **({"per_region": True} if len(self.gates) > 1 else {})}


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


def expand(embedded: np.ndarray, embed: Iterable[bool], per: int = 1) -> np.ndarray:
    """Rows for every sampled frame from the rows of the embedded ones (in order): each frame
    carries the embedding of the last embedded frame at or before it. ``per``: rows per frame
    (with regions, a frame's consecutive region rows, all embedded or reused together)."""
    flags = np.asarray(list(embed), dtype=bool)
    if int(flags.sum()) * per != len(embedded):
        raise ValueError(f"{len(embedded)} embeddings for {int(flags.sum())} embedded frames x {per}")
    return expand_rows(embedded, np.repeat(flags[:, None], per, axis=1))


def reuse_map(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-region reuse: ``mask[f, r]`` says whether region ``r`` of frame ``f`` went through the
    encoder. Returns ``(source, rows)``: ``source[f, r]`` the frame whose embedding of region ``r``
    frame ``f`` carries (the last one at or before it that embedded that region), and ``rows`` (one
    per frame and region, frame by frame) the index of that embedding among the embedded ones,
    which come frame by frame, region by region."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError("mask must be [frames, regions]")
    if not len(mask):
        return np.zeros(mask.shape, np.intp), np.zeros(0, np.intp)
    if not mask[0].all():
        raise ValueError("the first sampled frame must be embedded")
    source = np.stack([reuse_sources(mask[:, r]) for r in range(mask.shape[1])], axis=1)
    ordinal = np.cumsum(mask.ravel()).reshape(mask.shape) - 1  # each embedded row's place among them
    return source, ordinal[source, np.arange(mask.shape[1])].ravel()


def expand_rows(embedded: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rows for every frame and region (frame by frame) from the embedded ones (see :func:`reuse_map`)."""
    mask = np.asarray(mask, dtype=bool)
    if int(mask.sum()) != len(embedded):
        raise ValueError(f"{len(embedded)} embeddings for {int(mask.sum())} embedded rows")
    return embedded[reuse_map(mask)[1]] if len(mask) else embedded[:0]
