"""Zero-shot tagging maths (pure numpy): a frame's candidate tags, per-tag calibration, tag ranges.

The rule (``docs/tags.md``), with ``s`` a frame's cosine to a tag's ensembled text vector:

* **candidate** (per frame, archive-independent; stored in the shards): ``s >= floor`` and
  ``s >= best - margin`` (``best``: the frame's top score) and among the frame's ``top_k`` tags.
* **threshold** of a tag, from its scores on a sample of the archive's frames:
  ``max(floor, median + k * max(1.4826 * MAD, min_spread))``: the tag must stand out from its
  own usual level in this archive (CLIP scores some words high on everything).
* **present**: a candidate whose score clears its tag's threshold, or the frame's best tag
  (so what fills most of the archive, a camera's constant scene, is still "here"). A frame stands for one
  sampling step; present frames of a tag at most ``gap_steps`` steps apart form one range.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

MAD_SIGMA = 1.4826  # MAD -> standard deviation of a normal distribution


@dataclasses.dataclass(frozen=True)
class Rule:
    floor: float = 0.18  # no tag below this cosine (CLIP's unrelated text scores ~0.10-0.18)
    margin: float = 0.05  # within this of the frame's best tag
    top_k: int = 8  # at most this many candidates per frame
    k: float = 3.0  # robust standard deviations above the tag's background
    min_spread: float = 0.005  # a background spread never counts as less than this
    gap_steps: float = 2.0  # present frames this many sampling steps apart join (one missed frame)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def candidate_key(self) -> str:
        """What the stored candidates depend on (part of the tag channel's id)."""
        return f"floor={self.floor:g},margin={self.margin:g},top_k={self.top_k}"


DEFAULT_RULE = Rule()


def candidate_mask(scores: np.ndarray, rule: Rule = DEFAULT_RULE) -> np.ndarray:
    """[N, K] bool: which (frame, tag) scores are candidates."""
    s = np.asarray(scores, dtype=np.float32)
    n, k = s.shape
    if n == 0 or k == 0:
        return np.zeros(s.shape, dtype=bool)
    best = s.max(axis=1, keepdims=True)
    mask = (s >= rule.floor) & (s >= best - rule.margin)
    if rule.top_k < k:
        kth = -np.partition(-s, rule.top_k - 1, axis=1)[:, rule.top_k - 1 : rule.top_k]
        mask &= s >= kth  # ties at the k-th score may add one or two: harmless
    return mask


def candidates(scores: np.ndarray, rule: Rule = DEFAULT_RULE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frame index, tag index, score, is the frame's best tag) of every candidate, frame by frame."""
    s = np.asarray(scores, dtype=np.float32)
    rows, cols = np.nonzero(candidate_mask(s, rule))
    best = s.argmax(axis=1) if s.size else np.zeros(len(s), np.int64)
    return rows.astype(np.int64), cols.astype(np.int32), s[rows, cols], best[rows] == cols


@dataclasses.dataclass
class Calibration:
    """Per-tag thresholds from an archive's own scores (see the module docstring)."""

    thresholds: np.ndarray  # float32 [K]
    median: np.ndarray  # float32 [K]
    spread: np.ndarray  # float32 [K]: robust standard deviation, at least min_spread
    frames: int  # calibration frames

    def to_dict(self, tags: list[str]) -> dict:
        r = lambda v: round(float(v), 5)  # noqa: E731
        return {"frames": self.frames, "tags": {
            t: {"threshold": r(self.thresholds[i]), "median": r(self.median[i]), "spread": r(self.spread[i])}
            for i, t in enumerate(tags)}}


def calibrate(scores: np.ndarray, rule: Rule = DEFAULT_RULE) -> Calibration:
    """Thresholds from the scores [N, K] of a sample of the archive's frames (no frames: the floor)."""
    s = np.asarray(scores, dtype=np.float32)
    n, k = s.shape
    if n == 0:
        zero = np.zeros(k, np.float32)
        return Calibration(np.full(k, rule.floor, np.float32), zero, zero + rule.min_spread, 0)
    med = np.median(s, axis=0)
    spread = np.maximum(MAD_SIGMA * np.median(np.abs(s - med), axis=0), rule.min_spread)
    thr = np.maximum(rule.floor, med + rule.k * spread)
    return Calibration(thr.astype(np.float32), med.astype(np.float32), spread.astype(np.float32), n)


def sample_rows(n: int, limit: int) -> np.ndarray:
    """Up to ``limit`` row indices spread evenly over ``n`` rows (deterministic)."""
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclasses.dataclass(frozen=True)
class TagRange:
    tag: int  # index into the vocabulary
    start: float
    end: float
    score: float  # best frame score in the range
    frames: int


def tag_ranges(pts: np.ndarray, tags: np.ndarray, scores: np.ndarray, step: float,
               duration: float | None = None, gap_steps: float = DEFAULT_RULE.gap_steps) -> Iterator[TagRange]:
    """Ranges of one video from its present (frame time, tag, score) rows: per tag, frames at
    most ``gap_steps * step`` apart join; a range ends one step after its last frame (at most at
    ``duration``)."""
    pts = np.asarray(pts, dtype=np.float64)
    tags = np.asarray(tags)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((pts, tags))
    pts, tags, scores = pts[order], tags[order], scores[order]
    cut = np.flatnonzero((np.diff(tags) != 0) | (np.diff(pts) > gap_steps * step + 1e-6)) + 1
    for a, b in zip(np.r_[0, cut], np.r_[cut, len(pts)]):
        if b <= a:
            continue
        end = pts[b - 1] + step
        if duration is not None:
            end = max(min(end, duration), pts[b - 1])
        yield TagRange(int(tags[a]), float(pts[a]), float(end), float(scores[a:b].max()), int(b - a))
