"""Retrospection over an index: events of a concept and zero-shot label timelines, per video.

Wiring only: frames come from :mod:`vidsearch.query.engine`, the logic from the pure modules
:mod:`vidsearch.retro.events` and :mod:`vidsearch.retro.classify`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.retro.classify import (
    DEFAULT_TEMPLATES,
    VideoLabels,
    check_templates,
    frame_probs,
    label_timeline,
    label_vectors,
)
from vidsearch.errors import UserError
from vidsearch.retro.events import VideoEvents, summarise, thresholds, video_events
from vidsearch.query.engine import (
    FrameIndex,
    contrast_scores,
    load_frame_index,
    query_label,
    query_vectors,
    select_frames,
    video_series,
)
from vidsearch.index.shards import IndexStore


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
    return EventsResult(
        query=query_label(texts, negatives, images), model_id=index.model_id, semantics=encoder.info.semantics,
        prompts=list(texts), negatives=list(negatives), images=[str(p) for p in images], high=hi, low=lo,
        smooth_s=smooth_s, videos=videos, frames_scanned=int(len(considered)), skipped_no_time=sel.skipped_no_time,
        seconds=time.perf_counter() - t0,
    )


@dataclasses.dataclass
class ClassifyResult:
    labels: list[str]
    templates: list[str]
    unknown_labels: list[str]
    model_id: str
    semantics: str
    smooth_s: float
    min_prob: float | None
    videos: list[VideoLabels]
    frames_scanned: int
    seconds: float

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in self.videos:
            for k, s in v.totals().items():
                out[k] = round(out.get(k, 0.0) + s, 3)
        return out

    def to_dict(self) -> dict:
        return {
            "labels": self.labels, "templates": self.templates, "unknown_labels": self.unknown_labels,
            "model_id": self.model_id, "semantics": self.semantics, "smooth_s": self.smooth_s, "min_prob": self.min_prob,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4), "totals": self.totals(),
            "videos": [v.to_dict() for v in self.videos],
        }


def classify_frames(
    store: IndexStore,
    encoder,
    labels: Sequence[str],
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    index: FrameIndex | None = None,
    video_glob: str | None = None,
    after=None,
    before=None,
    smooth_s: float = 3.0,
    min_prob: float | None = None,
    min_segment_s: float = 0.0,
) -> ClassifyResult:
    """A label timeline per video: zero-shot classification of every indexed frame."""
    t0 = time.perf_counter()
    templates = check_templates(templates)
    mat, unknown = label_vectors(encoder, labels, templates)
    if len(unknown) == len(labels):
        raise UserError(f"model {encoder.info.name} cannot embed any of these labels ({', '.join(labels)}); "
                        "use words it knows (the demo model knows only colours)")
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    # one pass over the (possibly memory-mapped float16) matrix scores every label at once
    probs = frame_probs(index.emb, mat)
    videos = [
        label_timeline(s.video_id, s.pts, s.values, labels, smooth_s=smooth_s, min_prob=min_prob,
                       min_segment_s=min_segment_s, duration=s.duration, path=s.path)
        for s in video_series(index, sel, probs)
    ]
    return ClassifyResult(
        labels=list(labels), templates=list(templates), unknown_labels=unknown, model_id=index.model_id,
        semantics=encoder.info.semantics, smooth_s=smooth_s, min_prob=min_prob, videos=videos,
        frames_scanned=int(sum(len(g) for g in sel.groups.values())), seconds=time.perf_counter() - t0,
    )
