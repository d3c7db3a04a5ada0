"""Ranges without a full score vector: candidate frames, a threshold from a sample, exact windows around hits.

The engine's plain path scores every frame, takes the median of all scores and runs every
video through the range logic. For a big index that is most of a query's time. Here:

1. **Candidates.** *flat*: faiss's fused float16 scan of the whole matrix keeps the best
   ``CANDIDATES`` rows, exactly scored (:mod:`vidsearch.index.flatscan`). *two-stage*: the
   compressed first stage (:mod:`vidsearch.index.coarse`) proposes rows, the rows appended since
   it was built are scanned exactly, and every candidate is rescored from the float16 matrix.
   4x more are taken until :func:`settled`: every hit is a candidate, or the ``top`` ranges
   found outscore anything left out.
2. **Threshold.** ``median + (best - median) / 2`` as before, the median taken on an even spread
   of rows (``SAMPLE_ROWS``; the coarse stage keeps its own spread): a sample of 8k estimates
   it to ~1e-3 of the score spread (8k rows: ~0.014 standard deviations).
3. **Windows.** Only a frame whose score reaches the threshold (a *hit*) can start a range, and
   a smoothed score depends on frames within the smoothing window. So each hit's video is
   rescored exactly in an *island* of ``smooth + 2 steps`` around each hit (islands extend
   while new hits turn up at their edges), and :func:`vidsearch.core.ranges.video_ranges` runs on
   the islands with the video's own sample step: the ranges are the ones a full scan finds,
   provided the candidates contain a frame of each.
"""
from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from vidsearch.core.ranges import TimeRange, sample_step, video_ranges
from vidsearch.index.frames import FrameIndex
from vidsearch.index.matrix import matmul

#: rows the median is estimated on
SAMPLE_ROWS = 8_192
#: best rows taken from the flat scan, and from the coarse stage, at first (4x more while unsettled)
CANDIDATES = 16_384
COARSE_CANDIDATES = 8_192
MAX_COARSE_CANDIDATES = 131_072
#: how far above its k-th approximate score a row the coarse stage left out may score (PQ error)
COARSE_MARGIN = 0.02
#: scores within this of the threshold count as possible hits (faiss and ONNX Runtime sum in different orders)
SLACK = 1e-4


@dataclasses.dataclass
class Candidates:
    rows: np.ndarray  # int64, candidate rows
    scores: np.ndarray  # float32, their exact scores
    median: float
    path: str  # "flat" or "two-stage"
    #: no row outside the candidates scores above this (exact for "flat"; the first stage's
    #: k-th score plus its error margin for "two-stage"); -inf when every row is a candidate
    floor: float = float("-inf")
    complete: bool = True

    @property
    def best(self) -> float:
        return float(self.scores.max()) if len(self.scores) else float("-inf")


def threshold_of(best: float, median: float, min_score: float | None) -> float:
    thr = median + 0.5 * (best - median)
    return max(thr, float(min_score)) if min_score is not None else thr


def exact_scores(index: FrameIndex, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Scores of ``rows`` (any order) read from the matrix: float16 rows widened, float32 products.

    numpy, not ONNX Runtime: a few thousand rows do not pay for importing it (~0.15 s)."""
    if not len(rows):
        return np.zeros(0, np.float32)
    order = np.argsort(rows, kind="stable")
    out = np.empty(len(rows), np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    emb = index.random_access() if len(rows) > 256 else index.emb  # scattered rows: no read-ahead
    for i in range(0, len(rows), 1 << 15):
        part = order[i : i + (1 << 15)]
        out[part] = np.asarray(emb[rows[part]], dtype=np.float32) @ q
    return out


def _spread(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).astype(np.int64))


def flat_candidates(index: FrameIndex, scan, query: np.ndarray, k: int, median: float | None = None) -> Candidates:
    """The ``k`` exactly best rows of the whole matrix (``scan``: a :class:`~vidsearch.index.flatscan.FlatScan`)."""
    if median is None:
        median = float(np.median(exact_scores(index, _spread(len(index), SAMPLE_ROWS), query)))
    scores, rows = scan.search(query, k)
    floor = float(scores[-1]) if len(rows) == k and len(rows) < len(index) else float("-inf")
    return Candidates(rows, scores, median, "flat", floor)


def coarse_candidates(index: FrameIndex, coarse, query: np.ndarray, k: int, median: float | None = None) -> Candidates:
    """The ``k`` rows the coarse stage ranks best, plus every row appended since it was built, scored exactly."""
    if median is None:
        median = float(np.median(np.asarray(coarse.sample, dtype=np.float32) @ np.asarray(query, dtype=np.float32)))
    tail_rows, tail_scores = _tail(index, coarse, query)
    approx, rows = coarse.search(query, k)
    floor = float(approx.min()) + COARSE_MARGIN if len(approx) == k and k < coarse.rows else float("-inf")
    rows, scores = np.concatenate([rows, tail_rows]), np.concatenate([exact_scores(index, rows, query), tail_scores])
    return Candidates(rows, scores, median, "two-stage", floor)


def settled(cand: Candidates, threshold: float, ranked: list[TimeRange], top: int | None) -> bool:
    """Whether more candidates could change the answer: not when every hit is among them (the
    floor is under the threshold), nor when the ``top`` ranges found all score at least the floor
    (a range with no candidate frame has no frame, hence no smoothed score, above the floor)."""
    if cand.floor < threshold - SLACK:
        return True
    return top is not None and len(ranked) >= top and ranked[top - 1].score >= cand.floor


def _tail(index: FrameIndex, coarse, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows appended since the coarse stage was updated, scored exactly (every one of them)."""
    tail = np.arange(coarse.rows, len(index), dtype=np.int64)
    if len(tail) > 1 << 16:
        return tail, matmul(index.emb[coarse.rows :], query)
    return tail, exact_scores(index, tail, query)


# -- islands -----------------------------------------------------------------------------------
class VideoRows:
    """One video's rows (time order) and frame times, read from the matrix on demand."""

    def __init__(self, index: FrameIndex, runs: list[tuple[int, int]]):
        self.starts = np.array([r0 for r0, _ in runs], dtype=np.int64)
        self.lengths = np.array([n for _, n in runs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.pts = np.concatenate([np.asarray(index.pts[r0 : r0 + n]) for r0, n in runs])

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions (in time order) of matrix ``rows`` of this video."""
        k = np.searchsorted(self.starts, rows, side="right") - 1
        return self.offsets[k] + rows - self.starts[k]

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Matrix rows of positions ``[lo, hi)``."""
        pos = np.arange(lo, hi, dtype=np.int64)
        k = np.searchsorted(self.offsets, pos, side="right") - 1
        return self.starts[k] + pos - self.offsets[k]


def islands(pts: np.ndarray, hit_pos: np.ndarray, radius: float) -> list[tuple[int, int]]:
    """Position ranges ``[lo, hi)`` covering ``radius`` seconds around each hit, overlaps merged."""
    t = np.sort(pts[hit_pos])
    lo = np.searchsorted(pts, t - radius, side="left")
    hi = np.searchsorted(pts, t + radius, side="right")
    out: list[list[int]] = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def video_hit_ranges(index: FrameIndex, vrows: VideoRows, hit_pos: np.ndarray, query: np.ndarray, threshold: float,
                     *, video_id: str, smooth_s: float, duration: float | None) -> list[TimeRange]:
    """The ranges of one video, computed exactly on islands around its hits (grown until no new hit)."""
    step = sample_step(vrows.pts)
    radius = smooth_s + 3 * step + 1e-6
    known = np.unique(hit_pos)
    scored: dict[tuple[int, int], np.ndarray] = {}
    while True:
        spans = islands(vrows.pts, known, radius)
        for span in spans:
            if span not in scored:
                scored[span] = exact_scores(index, vrows.rows(*span), query)
        found = np.concatenate([lo + np.flatnonzero(scored[(lo, hi)] >= threshold) for lo, hi in spans])
        grown = np.union1d(known, found)
        if len(grown) == len(known):
            break
        known = grown
    out: list[TimeRange] = []
    for lo, hi in spans:
        out += video_ranges(video_id, vrows.pts[lo:hi], scored[(lo, hi)], threshold, smooth_s=smooth_s,
                            duration=duration, step=step)
    return out


def candidate_ranges(index: FrameIndex, cand: Candidates, query: np.ndarray, threshold: float, *,
                     durations: dict[str, float], smooth_s: float, top: int | None = None) -> list[TimeRange]:
    """Every range that holds a hit among the candidates; with ``top``, videos are taken best hit
    first and the rest are skipped once ``top`` ranges outscore their best frame (a smoothed score
    never exceeds the best raw score under it)."""
    keep = cand.scores >= threshold - SLACK
    hits, hit_scores = cand.rows[keep], cand.scores[keep]
    if not len(hits):
        return []
    codes = np.asarray(index.codes[hits])
    order = np.lexsort((-hit_scores, codes))  # by video, best hit first
    codes, hits, hit_scores = codes[order], hits[order], hit_scores[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    runs = index.video_runs()
    found: list[TimeRange] = []
    best: list[float] = []  # the ``top`` best range scores so far (a min-heap)
    for i in np.argsort(-hit_scores[starts], kind="stable").tolist():
        if top is not None and len(best) >= top and best[0] > hit_scores[starts[i]]:
            break
        code = int(codes[starts[i]])
        vrows = VideoRows(index, runs[code])
        vid = index.videos[code]
        mine = np.sort(hits[starts[i] : ends[i]])
        got = video_hit_ranges(index, vrows, vrows.positions(mine), query, threshold, video_id=vid,
                               smooth_s=smooth_s, duration=durations.get(vid))
        found += got
        for r in got:
            (heapq.heappush if len(best) < (top or 0) else heapq.heappushpop)(best, r.score)
    return found
