"""Events: when is a concept present in each video, and for how long.

:func:`find_events` scores an index's frames as a query does; the rest is pure. On top of :mod:`vidsearch.core.ranges`: per-frame scores are smoothed over time
(:func:`~vidsearch.core.ranges.smooth`), an event starts where the smoothed score reaches the *high*
threshold and extends while it stays at or above the *low* threshold
(:func:`~vidsearch.core.ranges.hysteresis_runs`), and events closer than ``max_gap_s`` merge
(:func:`~vidsearch.core.ranges.merge_runs`). Hysteresis keeps one flickering presence as one event
instead of many.

An event runs from its first frame to the end of its last frame (one sample step later,
clipped to the video's duration), exactly as query ranges do. Dwell time is the summed length
of a video's events; first appearance is the start of its first event.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.clip import contrast_scores
from vidsearch.core.ranges import TimeRange, adaptive_threshold, video_ranges
from vidsearch.errors import UserError
from vidsearch.index.shards import IndexStore
from vidsearch.query.engine import FrameIndex, load_frame_index, select_frames, set_peak_boxes, video_series
from vidsearch.query.vectors import query_label, query_vectors

#: Default thresholds, as fractions of the way from the median score to the best score over
#: every frame considered: an event needs a smoothed score half-way up and lasts while it stays
#: 40 % of the way up. (``high`` is :func:`vidsearch.core.ranges.adaptive_threshold`.)
HIGH_FRACTION = 0.5
LOW_FRACTION = 0.4


@dataclasses.dataclass
class VideoEvents:
    """Every event of one video plus its summary figures (seconds)."""

    video_id: str
    path: str | None
    events: list[TimeRange]
    frames: int  # frames scored
    duration: float | None = None
    creation_time: _dt.datetime | None = None  # when the file says recording began

    @property
    def first_appearance_at(self) -> _dt.datetime | None:
        """Recorded (wall-clock) time of the first appearance, when the file carries a creation time."""
        if self.creation_time is None or self.first_appearance is None:
            return None
        return self.creation_time + _dt.timedelta(seconds=self.first_appearance)

    @property
    def first_appearance(self) -> float | None:
        return self.events[0].start if self.events else None

    @property
    def total_dwell(self) -> float:
        return float(sum(e.duration for e in self.events))

    @property
    def longest_dwell(self) -> float:
        return float(max((e.duration for e in self.events), default=0.0))

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "duration": self.duration,
            "frames": self.frames,
            "first_appearance": None if self.first_appearance is None else round(self.first_appearance, 3),
            "creation_time": None if self.creation_time is None else self.creation_time.isoformat(),
            "first_appearance_at": None if self.first_appearance_at is None else self.first_appearance_at.isoformat(),
            "total_dwell": round(self.total_dwell, 3),
            "longest_dwell": round(self.longest_dwell, 3),
            "count": len(self.events),
            "events": [e.to_dict() for e in self.events],
        }


def thresholds(
    all_scores: np.ndarray, high: float | None = None, low: float | None = None
) -> tuple[float, float]:
    """(high, low) hysteresis thresholds; missing ones are set relative to the score distribution.

    ``low`` never exceeds ``high``. With no scores both are +inf (nothing is an event).
    """
    all_scores = np.asarray(all_scores, dtype=np.float64)
    if len(all_scores) == 0:
        return float("inf"), float("inf")
    med, top = float(np.median(all_scores)), float(np.max(all_scores))
    if high is None:
        high = adaptive_threshold(all_scores)  # med + HIGH_FRACTION * (top - med)
    if low is None:
        low = min(high, med + LOW_FRACTION * (top - med))
    return float(high), float(min(low, high))


def video_events(
    video_id: str,
    pts: np.ndarray,
    scores: np.ndarray,
    high: float,
    low: float | None = None,
    *,
    smooth_s: float = 3.0,
    max_gap_s: float | None = None,
    min_duration_s: float = 0.0,
    duration: float | None = None,
    path: str | None = None,
    creation_time: _dt.datetime | None = None,
) -> VideoEvents:
    """Every interval of one video where the concept is present, in time order.

    ``low`` defaults to ``high`` (no hysteresis). Events closer than ``max_gap_s`` (default: two
    sample steps) merge; events shorter than ``min_duration_s`` are dropped after merging.
    """
    low = high if low is None else min(low, high)
    events = []
    for ev in video_ranges(video_id, pts, scores, high, smooth_s=smooth_s, max_gap_s=max_gap_s, duration=duration, low=low):
        ev.path = path
        if ev.duration + 1e-9 >= min_duration_s:
            events.append(ev)
    return VideoEvents(video_id, path, events, len(pts), duration, creation_time)


def summarise(videos: Sequence[VideoEvents]) -> dict:
    """Totals over many videos (seconds)."""
    with_events = [v for v in videos if v.events]
    return {
        "videos": len(videos),
        "videos_with_events": len(with_events),
        "events": sum(len(v.events) for v in videos),
        "total_dwell": round(sum(v.total_dwell for v in videos), 3),
        "longest_dwell": round(max((v.longest_dwell for v in videos), default=0.0), 3),
    }


CSV_COLUMNS = [
    "path", "video_id", "event", "start", "end", "duration", "peak_time", "peak_score",
    "first_appearance", "total_dwell", "longest_dwell",
]


def csv_rows(videos: Sequence[VideoEvents]) -> list[dict]:
    """One row per event (videos without events give no row), with the video's summary repeated."""
    rows = []
    for v in videos:
        for i, e in enumerate(v.events, 1):
            rows.append({
                "path": v.path or "", "video_id": v.video_id, "event": i,
                "start": round(e.start, 3), "end": round(e.end, 3), "duration": round(e.duration, 3),
                "peak_time": round(e.peak_time, 3), "peak_score": round(e.peak_score, 5),
                "first_appearance": round(v.first_appearance or 0.0, 3), "total_dwell": round(v.total_dwell, 3),
                "longest_dwell": round(v.longest_dwell, 3),
            })
    return rows


@dataclasses.dataclass
class EventsResult:
    query: str
    model_id: str
    semantics: str
    prompts: list[str]
    negatives: list[str]
    images: list[str]
    high: float
    low: float
    smooth_s: float
    videos: list[VideoEvents]
    frames_scanned: int
    skipped_no_time: int
    seconds: float

    def to_dict(self) -> dict:
        fin = lambda v: round(v, 5) if np.isfinite(v) else None  # noqa: E731
        return {
            "query": self.query, "model_id": self.model_id, "semantics": self.semantics,
            "prompts": self.prompts, "negatives": self.negatives, "images": self.images,
            "threshold": fin(self.high), "high": fin(self.high), "low": fin(self.low), "smooth_s": self.smooth_s,
            "frames_scanned": self.frames_scanned, "skipped_no_time": self.skipped_no_time,
            "seconds": round(self.seconds, 4), "summary": summarise(self.videos),
            "videos": [v.to_dict() for v in self.videos],
        }


def find_events(
    store: IndexStore,
    encoder,
    texts: Sequence[str],
    *,
    negatives: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    index: FrameIndex | None = None,
    video_glob: str | None = None,
    after=None,
    before=None,
    high: float | None = None,
    low: float | None = None,
    smooth_s: float = 3.0,
    max_gap_s: float | None = None,
    min_duration_s: float = 0.0,
) -> EventsResult:
    """Every interval of every (selected) video where the query is present."""
    t0 = time.perf_counter()
    texts = [t for t in texts if t and t.strip()]
    if not texts and not images:
        raise UserError('empty query: say what to look for, e.g. vidsearch events "a package on the doorstep" (or --image PATH)')
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    pos, negs = query_vectors(encoder, texts, negatives, images)
    sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    known = bool(np.any(pos)) and len(index) > 0
    scores = contrast_scores(index.scores(pos), [index.scores(n) for n in negs]) if known else np.zeros(len(index), np.float32)
    considered = np.concatenate(list(sel.groups.values())) if sel.groups else np.zeros(0, dtype=np.int64)
    hi, lo = thresholds(scores[considered], high, low) if known else (float("inf"), float("inf"))
    videos = [
        video_events(s.video_id, s.pts, s.values, hi, lo, smooth_s=smooth_s, max_gap_s=max_gap_s,
                     min_duration_s=min_duration_s, duration=s.duration, path=s.path, creation_time=s.creation_time)
        for s in video_series(index, sel, scores)
    ]
    set_peak_boxes(index, sel.groups, [e for v in videos for e in v.events], pos)
    return EventsResult(
        query=query_label(texts, negatives, images), model_id=index.model_id, semantics=encoder.info.semantics,
        prompts=list(texts), negatives=list(negatives), images=[str(p) for p in images], high=hi, low=lo,
        smooth_s=smooth_s, videos=videos, frames_scanned=int(len(considered)), skipped_no_time=sel.skipped_no_time,
        seconds=time.perf_counter() - t0,
    )
