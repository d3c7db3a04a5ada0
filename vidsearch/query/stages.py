"""Ranges without a full score vector: candidate frames, a threshold from a sample, exact windows around hits.

The engine's plain path scores every frame, takes the median of all scores and runs every
video through the range logic. For a big index that is most of a query's time. Here:

1. **Candidates.** *flat*: faiss's fused float16 scan of the whole matrix keeps the best
   ``CANDIDATES`` rows, exactly scored (:mod:`vidsearch.index.flatscan`), and scans again for 4x
   more while the last of them still reaches the threshold. *two-stage*: the compressed first
   stage (:mod:`vidsearch.index.coarse`) proposes rows, the rows appended since it was built are
   scanned exactly, and every candidate is rescored from the float16 matrix; 4x more while half
   of them are hits.
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

import numpy as np

from vidsearch.core.ranges import TimeRange, sample_step, video_ranges
from vidsearch.index.frames import FrameIndex
from vidsearch.index.matrix import matmul

#: rows the median is estimated on
SAMPLE_ROWS = 8_192
#: best rows taken from the flat scan, and from the coarse stage (first; more while they are crowded with hits)
CANDIDATES = 16_384
COARSE_CANDIDATES = 8_192
MAX_COARSE_CANDIDATES = 131_072
#: scores within this of the threshold count as possible hits (faiss and ONNX Runtime sum in different orders)
SLACK = 1e-4


@dataclasses.dataclass
class Candidates:
    rows: np.ndarray  # int64, candidate rows
    scores: np.ndarray  # float32, their exact scores
    median: float
    path: str  # "flat" or "two-stage"
    #: False when the first stage's last candidate still reached the threshold (hits may be missing)
    complete: bool = True


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
    for i in range(0, len(rows), 1 << 15):
        part = order[i : i + (1 << 15)]
        out[part] = np.asarray(index.emb[rows[part]], dtype=np.float32) @ q
    return out


def _spread(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).astype(np.int64))


def flat_candidates(index: FrameIndex, scan, query: np.ndarray, min_score: float | None) -> Candidates:
    """Exact best rows of the whole matrix (``scan``: a :class:`~vidsearch.index.flatscan.FlatScan`),
    as many as it takes to hold every row that reaches the threshold."""
    median = float(np.median(exact_scores(index, _spread(len(index), SAMPLE_ROWS), query)))
    k = CANDIDATES
    while True:
        scores, rows = scan.search(query, k)
        thr = threshold_of(float(scores[0]), median, min_score)
        if len(rows) < k or scores[-1] < thr - SLACK:
            return Candidates(rows, scores, median, "flat")
        k *= 4  # more hits than candidates: scan again for more (faiss's top-k is SIMD, its range search is not)


def coarse_candidates(index: FrameIndex, coarse, query: np.ndarray, min_score: float | None) -> Candidates:
    """Rows proposed by the coarse stage, plus every row appended since it was built, scored exactly;
    more of them while at least half the candidates are hits (up to ``MAX_COARSE_CANDIDATES``)."""
    median = float(np.median(np.asarray(coarse.sample, dtype=np.float32) @ np.asarray(query, dtype=np.float32)))
    tail_rows, tail_scores = _tail(index, coarse, query)
    k = COARSE_CANDIDATES
    while True:
        approx, rows = coarse.search(query, k)
        rows, scores = np.concatenate([rows, tail_rows]), np.concatenate([exact_scores(index, rows, query), tail_scores])
        best = float(scores.max()) if len(scores) else float("-inf")
        thr = threshold_of(best, median, min_score)
        crowded = len(approx) == k and int(np.count_nonzero(scores[: len(approx)] >= thr)) >= k // 2
        if not crowded or k >= MAX_COARSE_CANDIDATES:
            return Candidates(rows, scores, median, "two-stage", not crowded)
        k *= 4


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
                     durations: dict[str, float], smooth_s: float) -> list[TimeRange]:
    """Every range that holds a hit among the candidates."""
    hits = cand.rows[cand.scores >= threshold - SLACK]
    if not len(hits):
        return []
    codes = np.asarray(index.codes[np.sort(hits)])
    runs = index.video_runs()
    found: list[TimeRange] = []
    for code in np.unique(codes).tolist():
        vrows = VideoRows(index, runs[code])
        mine = np.sort(hits)[codes == code]
        vid = index.videos[code]
        found += video_hit_ranges(index, vrows, vrows.positions(mine), query, threshold, video_id=vid,
                                  smooth_s=smooth_s, duration=durations.get(vid))
    return found
