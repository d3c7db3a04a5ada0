"""Pure temporal logic: smooth per-frame scores over time and merge hits into ranked ranges.

Inputs are per-video arrays of frame times (seconds, ascending) and scores. Nothing here
knows about files, models or databases.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np


@dataclasses.dataclass
class TimeRange:
    video_id: str
    start: float
    end: float
    peak_time: float
    peak_score: float  # best raw frame score in the range
    score: float  # best smoothed score: what ranges are ranked by
    frames: int
    path: str | None = None
    thumbnail: str | None = None
    #: the peak does not stand out from the scores of the frames searched (:func:`mark_weak`);
    #: None where not judged (left out of :meth:`to_dict`)
    weak: bool | None = None
    #: where in the peak frame the hit is (x0, y0, x1, y1 fractions): the best region of an index with
    #: regions, the line of text read on screen; None: the whole frame / not known
    box: tuple[float, float, float, float] | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("start", "end", "peak_time"):
            d[k] = round(d[k], 3)
        for k in ("peak_score", "score"):
            d[k] = round(float(d[k]), 5)
        if d["weak"] is None:
            del d["weak"]
        if self.box is None:
            d.pop("box")
        else:
            d["box"] = [round(float(v), 5) for v in self.box]
        return d


def median(x) -> float:
    """``np.median`` of a 1-D array (the same value) without it: ``np.median`` imports ``numpy.ma``
    (~12 ms of a cold query)."""
    a = np.asarray(x).reshape(-1)
    n = len(a)
    if n == 0 or (a.dtype.kind == "f" and np.isnan(a).any()):
        return float("nan")
    h = n // 2
    if n % 2:
        return float(np.partition(a, h)[h])
    return float(np.partition(a, [h - 1, h])[h - 1 : h + 1].mean())


def sample_step(pts: np.ndarray, default: float = 1.0) -> float:
    """Typical spacing between sampled frames (median difference)."""
    if len(pts) < 2:
        return default
    d = np.diff(pts)
    d = d[d > 0]
    return median(d) if len(d) else default


def smooth(pts: np.ndarray, scores: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average over a time window (works for irregular spacing, e.g. keyframes)."""
    pts = np.asarray(pts, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if window_s <= 0 or len(scores) < 2:
        return scores.copy()
    csum = np.concatenate([[0.0], np.cumsum(scores)])
    lo = np.searchsorted(pts, pts - window_s / 2, side="left")
    hi = np.searchsorted(pts, pts + window_s / 2, side="right")
    return (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)


def runs_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Index runs ``[i0, i1]`` (inclusive) where ``values >= threshold``."""
    above = np.asarray(values) >= threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def hysteresis_runs(values: np.ndarray, high: float, low: float) -> list[tuple[int, int]]:
    """Runs that reach ``high`` somewhere and extend while ``values >= low``."""
    out = []
    for i0, i1 in runs_above(values, low):
        if np.max(values[i0 : i1 + 1]) >= high:
            out.append((i0, i1))
    return out


def merge_runs(pts: np.ndarray, runs: Sequence[tuple[int, int]], max_gap_s: float) -> list[tuple[int, int]]:
    """Join runs separated by less than ``max_gap_s`` seconds."""
    merged: list[list[int]] = []
    for i0, i1 in runs:
        if merged and pts[i0] - pts[merged[-1][1]] <= max_gap_s:
            merged[-1][1] = i1
        else:
            merged.append([i0, i1])
    return [(a, b) for a, b in merged]


def adaptive_threshold(all_scores: np.ndarray, min_score: float | None = None) -> float:
    """Where hits begin when the user gave no threshold: halfway from the median to the best score.

    CLIP cosine scores live in a narrow band (about 0.15-0.35) whose level depends on the
    prompt, so a fixed number is a poor default; relative to the score distribution it works
    for any prompt. ``min_score`` (if given) is a floor.
    """
    if len(all_scores) == 0:
        return float("inf")
    top = float(np.max(all_scores))
    med = median(all_scores)
    thr = med + 0.5 * (top - med)
    if min_score is not None:
        thr = max(thr, float(min_score))
    return thr


def video_ranges(
    video_id: str,
    pts: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    smooth_s: float = 3.0,
    max_gap_s: float | None = None,
    duration: float | None = None,
    low: float | None = None,
    step: float | None = None,
) -> list[TimeRange]:
    """Ranges of one video where the smoothed score reaches ``threshold``.

    A range runs from its first hit frame to the end of its last hit frame (one sample step
    later); hits closer than ``max_gap_s`` (default: two sample steps) merge. With ``low``,
    ranges extend while the smoothed score stays above ``low`` (hysteresis). ``step``: the
    video's sample step when ``pts`` is only a window of it (default: measured on ``pts``).
    """
    order = np.argsort(pts, kind="stable")
    pts = np.asarray(pts, dtype=np.float64)[order]
    raw = np.asarray(scores, dtype=np.float64)[order]
    if len(pts) == 0:
        return []
    step = sample_step(pts) if step is None else step
    sm = smooth(pts, raw, smooth_s)
    gap = 2 * step + 1e-6 if max_gap_s is None else max_gap_s
    runs = runs_above(sm, threshold) if low is None else hysteresis_runs(sm, threshold, low)
    out = []
    for i0, i1 in merge_runs(pts, runs, gap):
        seg_raw = raw[i0 : i1 + 1]
        k = int(np.argmax(seg_raw))
        end = pts[i1] + step
        if duration is not None:
            end = min(end, duration)
        out.append(
            TimeRange(
                video_id=video_id, start=float(pts[i0]), end=float(max(end, pts[i1])),
                peak_time=float(pts[i0 + k]), peak_score=float(seg_raw[k]),
                score=float(np.max(sm[i0 : i1 + 1])), frames=i1 - i0 + 1,
            )
        )
    return out


def rank(ranges: Iterable[TimeRange], top: int | None = None) -> list[TimeRange]:
    """Best first: by smoothed peak, then raw peak, then longer ranges, then earlier."""
    out = sorted(ranges, key=lambda r: (-r.score, -r.peak_score, -r.duration, r.video_id, r.start))
    return out if top is None else out[:top]


def format_ts(seconds: float | None) -> str:
    """Seconds as H:MM:SS.s (what an investigator types into a player)."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}"


# -- weak results ------------------------------------------------------------------------------
#: A peak stands out from a set of scores when it is at least WEAK_MARGIN and at least WEAK_Z
#: robust standard deviations (1.4826 x MAD) above their median. A range is weak when its peak
#: stands out neither from the scores of all frames searched nor from those of its own video (a
#: camera whose every frame scores high does not hide a real hit in it, and one camera's
#: background does not make another's look like a hit). The margin is in cosine units: 0.03 is
#: 3 logits at CLIP's logit scale of 100 (odds of about 20 to 1), small beside a real CLIP hit
#: (~0.05-0.10 above a 0.15-0.30 background) and beside a demo-model hit (~1.0 above ~0); the z
#: bound catches a peak that is only the tail of a spread-out background.
WEAK_MARGIN = 0.03
WEAK_Z = 5.0
WEAK_RULE = (f"a peak stands out when it is at least {WEAK_MARGIN} and {WEAK_Z:g} robust SDs above the median score "
             "of all frames searched or of its own video's frames")
#: at most this many scores (an even stride through them) estimate a median and MAD
BASELINE_SAMPLE = 65536


def score_baseline(scores: np.ndarray) -> tuple[float, float]:
    """``(median, robust spread)`` of scores: 1.4826 x MAD (0 where more than half the scores are
    equal: a flat background, from which any peak WEAK_MARGIN above stands out)."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return 0.0, 0.0
    s = s[:: max(1, len(s) // BASELINE_SAMPLE)]
    med = median(s)
    spread = 1.4826 * median(np.abs(s - med))
    return med, spread


def stands_out(peak: float, baseline: tuple[float, float]) -> bool:
    """Whether a peak score stands out from ``baseline`` (:func:`score_baseline`)."""
    med, spread = baseline
    lift = float(peak) - med
    return lift >= WEAK_MARGIN and (spread <= 0 or lift / spread >= WEAK_Z)


def mark_weak(ranges: Iterable[TimeRange], all_scores: np.ndarray, video_scores: dict[str, np.ndarray]) -> None:
    """Set each range's ``weak`` (see WEAK_RULE): ``all_scores`` of every frame searched,
    ``video_scores`` per video_id of the frames searched in it."""
    ranges = list(ranges)
    if not ranges:
        return
    own = {vid: score_baseline(video_scores[vid]) for vid in {r.video_id for r in ranges} if vid in video_scores}
    mark_weak_by(ranges, score_baseline(all_scores), own)


def mark_weak_by(ranges: Iterable[TimeRange], archive: tuple[float, float], own: dict[str, tuple[float, float]]) -> None:
    """:func:`mark_weak` from baselines (:func:`score_baseline`) already estimated: ``archive`` of
    every frame searched, ``own`` per video_id (a search that never scores every frame samples them)."""
    for r in ranges:
        r.weak = not (stands_out(r.peak_score, archive) or (r.video_id in own and stands_out(r.peak_score, own[r.video_id])))
