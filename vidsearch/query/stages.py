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

Negative prompts (``--not``) are scored in the same passes (:class:`Scorer`): a frame's
contrast score never exceeds ``max(cosine, 0)``, so a bound on the positive prompt's cosine of
the rows left out bounds their contrast score too. Path and time filters (``--video``,
``--after/--before``) become a :class:`RowSelection`: runs of matrix rows (each video's rows are
contiguous runs), so the median, the candidates and the islands use selected rows only.
"""
from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from vidsearch.core.clip import contrast_scores
from vidsearch.core.regions import best_of_regions
from vidsearch.core.ranges import TimeRange, mark_weak_by, sample_step, score_baseline, video_ranges
from vidsearch.core.ranges import median as median_of
from vidsearch.index.frames import FrameIndex
from vidsearch.index.matrix import matmul

#: rows the median is estimated on
SAMPLE_ROWS = 8_192
#: best rows taken from the flat scan, and from the coarse stage, at first (4x more while unsettled)
CANDIDATES = 16_384
COARSE_CANDIDATES = 8_192
MAX_COARSE_CANDIDATES = 131_072
#: rows of each ranked range's video whose scores estimate its own baseline for the weak rule
#: (an even spread: median and MAD to a few percent, ~10k rows read for 20 videos)
VIDEO_SAMPLE_ROWS = 512
#: how far above its k-th approximate score a row the coarse stage left out may score (PQ error)
COARSE_MARGIN = 0.02
#: scores within this of the threshold count as possible hits (faiss and ONNX Runtime sum in different orders)
SLACK = 1e-4


@dataclasses.dataclass
class Candidates:
    rows: np.ndarray  # int64, candidate rows
    scores: np.ndarray  # float32, their exact scores
    #: (median, robust spread) of the sampled scores: the threshold's median, and what the weak
    #: rule measures a peak against (:func:`vidsearch.core.ranges.score_baseline`)
    baseline: tuple[float, float]
    path: str  # "flat" or "two-stage"
    #: no row outside the candidates scores above this (exact for "flat"; the first stage's
    #: k-th score plus its error margin for "two-stage"); -inf when every row is a candidate
    floor: float = float("-inf")
    #: whether ``floor`` is a proven bound (the flat scan's exact k-th score); the coarse stage's
    #: margin is an estimate of its quantisation error, not a bound
    proven: bool = True

    @property
    def median(self) -> float:
        return self.baseline[0]

    @property
    def best(self) -> float:
        return float(self.scores.max()) if len(self.scores) else float("-inf")


def threshold_of(best: float, median: float, min_score: float | None) -> float:
    thr = median + 0.5 * (best - median)
    return max(thr, float(min_score)) if min_score is not None else thr


def exact_scores(index: FrameIndex, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Scores of ``rows`` (any order) read from the matrix: float16 rows widened, float32 products;
    ``query`` [dim] (scores [n]) or [dim, K] (scores [n, K]).

    numpy, not ONNX Runtime: a few thousand rows do not pay for importing it (~0.15 s)."""
    q = np.asarray(query, dtype=np.float32)
    if not len(rows):
        return np.zeros((0, *q.shape[1:]), np.float32)
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *q.shape[1:]), np.float32)
    emb = index.random_access() if len(rows) > 256 else index.emb  # scattered rows: no read-ahead
    for i in range(0, len(rows), 1 << 15):
        part = order[i : i + (1 << 15)]
        out[part] = np.asarray(emb[rows[part]], dtype=np.float32) @ q
    return out


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D integer array without it (``np.unique`` imports ``numpy.ma``: ~12 ms of a cold query)."""
    a = np.sort(np.asarray(a))
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _spread(n: int, k: int) -> np.ndarray:
    return sorted_unique(np.linspace(0, n - 1, num=min(n, k)).astype(np.int64))


class Scorer:
    """Exact scores of matrix rows for one query: the cosine with ``query``, or with negative
    prompts :func:`vidsearch.core.clip.contrast_scores` (every prompt in the same pass)."""

    def __init__(self, query: np.ndarray, negatives=()):
        self.query = np.asarray(query, dtype=np.float32).reshape(-1)
        self.negatives = [np.asarray(n, dtype=np.float32).reshape(-1) for n in negatives]
        self.matrix = np.stack([self.query, *self.negatives], axis=1)  # [dim, 1 + negatives]

    def combine(self, s: np.ndarray) -> np.ndarray:
        """Scores from cosines ``s`` [n, 1 + negatives]."""
        if not self.negatives:
            return np.ascontiguousarray(s[:, 0], dtype=np.float32)
        return contrast_scores(s[:, 0], [s[:, i] for i in range(1, s.shape[1])])

    def rows(self, index: FrameIndex, rows: np.ndarray) -> np.ndarray:
        return self.combine(exact_scores(index, rows, self.matrix))

    def dense(self, emb: np.ndarray) -> np.ndarray:
        """Scores of every row of ``emb`` (a slice of the matrix)."""
        return self.combine(matmul(emb, self.matrix))

    def frame_run(self, index: FrameIndex, f0: int, n: int) -> np.ndarray:
        """Scores of frames ``[f0, f0 + n)``; with regions, each prompt's best region per frame
        first (as :meth:`FrameIndex.scores` gives the full path), then the contrast."""
        if not index.has_regions:
            return self.dense(index.emb[f0 : f0 + n])
        starts = np.asarray(index.frame_rows[f0 : f0 + n + 1], dtype=np.int64)
        cos = matmul(index.emb[int(starts[0]) : int(starts[-1])], self.matrix)
        return self.combine(np.stack([best_of_regions(cos[:, i], starts - starts[0]) for i in range(cos.shape[1])], axis=1))

    def vectors(self, x: np.ndarray) -> np.ndarray:
        return self.combine(np.asarray(x, dtype=np.float32) @ self.matrix)

    def bound(self, cosine: float) -> float:
        """The highest score of a row whose cosine with ``query`` is at most ``cosine`` (a contrast
        score is ``cosine * p`` with ``0 < p <= 1``: at most ``max(cosine, 0)``)."""
        return cosine if not self.negatives or cosine == float("-inf") else max(cosine, 0.0)


class RowSelection:
    """The rows a filtered query looks at (``--video``, ``--after/--before``): per video code, runs
    ``(row0, n)`` of matrix rows in time order; videos in the order the full path concatenates them."""

    def __init__(self, runs: dict[int, list[tuple[int, int]]]):
        self.runs = {c: r for c, r in runs.items() if r}
        flat = [(r0, n) for r in self.runs.values() for r0, n in r]
        self.lengths = np.array([n for _, n in flat], dtype=np.int64)
        self.firsts = np.array([r0 for r0, _ in flat], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        order = np.argsort(self.firsts, kind="stable")
        self._starts, self._ends = self.firsts[order], (self.firsts + self.lengths)[order]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` are selected (a boolean mask)."""
        k = np.searchsorted(self._starts, rows, side="right") - 1
        return (k >= 0) & (rows < self._ends[np.maximum(k, 0)])

    def at(self, pos: np.ndarray) -> np.ndarray:
        """Matrix rows at positions ``pos`` of the selection (its runs concatenated)."""
        k = np.searchsorted(self.offsets, pos, side="right") - 1
        return self.firsts[k] + pos - self.offsets[k]

    def spread(self, k: int) -> np.ndarray:
        """``k`` rows spread evenly over the selection (every row of a small one), in selection order."""
        n = len(self)
        return self.at(np.arange(n) if n <= 4 * k else np.linspace(0, n - 1, num=k).astype(np.int64))

    def ordered_runs(self) -> list[tuple[int, int]]:
        """The runs by first row, adjacent ones merged (contiguous reads)."""
        out: list[list[int]] = []
        for a, b in zip(self._starts.tolist(), self._ends.tolist()):
            if out and out[-1][1] == a:
                out[-1][1] = b
            else:
                out.append([a, b])
        return [(a, b - a) for a, b in out]


def _baseline(scores: np.ndarray) -> tuple[float, float]:
    """(median, robust spread) of sampled scores; the median as the threshold has always taken it."""
    return (median_of(scores), score_baseline(scores)[1]) if len(scores) else (0.0, 0.0)


def _sampled(index: FrameIndex, scorer: Scorer, sel: RowSelection | None) -> tuple[float, float]:
    rows = sel.spread(SAMPLE_ROWS) if sel is not None else _spread(len(index), SAMPLE_ROWS)
    return _baseline(scorer.rows(index, rows))


def _selected(cand: Candidates, sel: RowSelection | None) -> Candidates:
    if sel is not None:
        keep = sel.contains(cand.rows)
        cand.rows, cand.scores = cand.rows[keep], cand.scores[keep]
    return cand


def flat_candidates(index: FrameIndex, scan, scorer: Scorer, k: int, baseline: tuple[float, float] | None = None,
                    sel: RowSelection | None = None) -> Candidates:
    """The ``k`` exactly best rows of the whole matrix (``scan``: a :class:`~vidsearch.index.flatscan.FlatScan`),
    those of ``sel`` kept; with negative prompts rescored with them. ``baseline``: the sample's,
    from an earlier round (None: sampled now)."""
    if baseline is None:
        baseline = _sampled(index, scorer, sel)
    cosines, rows = scan.search(scorer.query, k)
    floor = scorer.bound(float(cosines[-1])) if len(rows) == k and len(rows) < len(index) else float("-inf")
    scores = scorer.rows(index, rows) if scorer.negatives else cosines
    return _selected(Candidates(rows, scores, baseline, "flat", floor), sel)


def coarse_candidates(index: FrameIndex, coarse, scorer: Scorer, k: int, baseline: tuple[float, float] | None = None,
                      sel: RowSelection | None = None) -> Candidates:
    """The ``k`` rows the coarse stage ranks best, plus every row appended since it was built, scored exactly."""
    if baseline is None:
        baseline = _sampled(index, scorer, sel) if sel is not None else _baseline(scorer.vectors(coarse.sample))
    tail_rows, tail_scores = _tail(index, coarse, scorer, sel)
    approx, rows = coarse.search(scorer.query, k)
    floor = scorer.bound(float(approx.min()) + COARSE_MARGIN) if len(approx) == k and k < coarse.rows else float("-inf")
    if sel is not None:
        rows = rows[sel.contains(rows)]
    rows, scores = np.concatenate([rows, tail_rows]), np.concatenate([scorer.rows(index, rows), tail_scores])
    return Candidates(rows, scores, baseline, "two-stage", floor, proven=floor == float("-inf"))


def mark_weak(index: FrameIndex, ranges: list[TimeRange], cand: Candidates, scorer: Scorer,
              sel: RowSelection | None = None) -> None:
    """The weak rule (:func:`vidsearch.core.ranges.mark_weak`) without every score: the archive's
    baseline is the sample's, each range's video's that of an even spread of its (selected) rows
    (``VIDEO_SAMPLE_ROWS``), scored exactly."""
    if not ranges:
        return
    runs = sel.runs if sel is not None else index.video_runs()
    wanted = {r.video_id for r in ranges}
    own = {}
    for code, video_runs in runs.items():
        vid = index.videos[code]
        if vid in wanted:
            mine = RowSelection({code: video_runs})
            rows = mine.at(_spread(len(mine), VIDEO_SAMPLE_ROWS))
            own[vid] = score_baseline(scorer.rows(index, rows))
    mark_weak_by(ranges, cand.baseline, own)


def settled(cand: Candidates, threshold: float, ranked: list[TimeRange], top: int | None) -> bool:
    """Whether more candidates could change the answer: not when every hit is among them (the
    floor is under the threshold), nor when the ``top`` ranges found all score at least the floor
    (a range with no candidate frame has no frame, hence no smoothed score, above the floor).
    No candidate at all (none in a row selection) settles nothing unless every row was one."""
    if not len(cand.scores):
        return cand.floor == float("-inf")
    if cand.floor < threshold - SLACK:
        return True
    return top is not None and len(ranked) >= top and ranked[top - 1].score >= cand.floor


def _tail(index: FrameIndex, coarse, scorer: Scorer, sel: RowSelection | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows appended since the coarse stage was updated, scored exactly (every selected one of them)."""
    tail = np.arange(coarse.rows, len(index), dtype=np.int64)
    if sel is not None:
        tail = tail[sel.contains(tail)]
    elif len(tail) > 1 << 16:
        return tail, scorer.dense(index.emb[coarse.rows :])
    return tail, scorer.rows(index, tail)


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


def video_hit_ranges(index: FrameIndex, vrows: VideoRows, hit_pos: np.ndarray, scorer: Scorer, threshold: float,
                     *, video_id: str, smooth_s: float, duration: float | None) -> list[TimeRange]:
    """The ranges of one video, computed exactly on islands around its hits (grown until no new hit)."""
    step = sample_step(vrows.pts)
    radius = smooth_s + 3 * step + 1e-6
    known = sorted_unique(hit_pos)
    scored: dict[tuple[int, int], np.ndarray] = {}
    while True:
        spans = islands(vrows.pts, known, radius)
        for span in spans:
            if span not in scored:
                scored[span] = scorer.rows(index, vrows.rows(*span))
        found = np.concatenate([lo + np.flatnonzero(scored[(lo, hi)] >= threshold) for lo, hi in spans])
        grown = sorted_unique(np.concatenate([known, found]))
        if len(grown) == len(known):
            break
        known = grown
    out: list[TimeRange] = []
    for lo, hi in spans:
        out += video_ranges(video_id, vrows.pts[lo:hi], scored[(lo, hi)], threshold, smooth_s=smooth_s,
                            duration=duration, step=step)
    return out


def candidate_ranges(index: FrameIndex, cand: Candidates, scorer: Scorer, threshold: float, *,
                     durations: dict[str, float], smooth_s: float, top: int | None = None,
                     sel: RowSelection | None = None) -> list[TimeRange]:
    """Every range that holds a hit among the candidates; with ``top``, videos are taken best hit
    first and the rest are skipped once ``top`` ranges outscore their best frame (a smoothed score
    never exceeds the best raw score under it). With ``sel``, a video's islands stay in its selected rows."""
    keep = cand.scores >= threshold - SLACK
    hits, hit_scores = cand.rows[keep], cand.scores[keep]
    if not len(hits):
        return []
    codes = np.asarray(index.codes[hits])
    order = np.lexsort((-hit_scores, codes))  # by video, best hit first
    codes, hits, hit_scores = codes[order], hits[order], hit_scores[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    runs = sel.runs if sel is not None else index.video_runs()
    found: list[TimeRange] = []
    best: list[float] = []  # the ``top`` best range scores so far (a min-heap)
    for i in np.argsort(-hit_scores[starts], kind="stable").tolist():
        if top is not None and len(best) >= top and best[0] > hit_scores[starts[i]]:
            break
        code = int(codes[starts[i]])
        vrows = VideoRows(index, runs[code])
        vid = index.videos[code]
        mine = np.sort(hits[starts[i] : ends[i]])
        got = video_hit_ranges(index, vrows, vrows.positions(mine), scorer, threshold, video_id=vid,
                               smooth_s=smooth_s, duration=durations.get(vid))
        found += got
        for r in got:
            (heapq.heappush if len(best) < (top or 0) else heapq.heappushpop)(best, r.score)
    return found
