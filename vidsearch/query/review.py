"""Interactive review queries: one scan gives the ranked ranges and each hit video's score timeline,
and relevance feedback (Rocchio on the frame embeddings) re-ranks with marked ranges.

Used by ``vidsearch serve``, which keeps the encoder and the search matrix warm between queries.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from vidsearch.core.clip import contrast_scores
from vidsearch.core.ranges import smooth
from vidsearch.core.timeparse import parse_when
from vidsearch.errors import UserError
from vidsearch.index.frames import FrameIndex
from vidsearch.query.engine import QueryResult, search_vector
from vidsearch.query.vectors import query_label, query_vectors

#: Rocchio weights: original query, mean of relevant frames, mean of non-relevant frames
ALPHA, BETA, GAMMA = 1.0, 0.75, 0.25


@dataclasses.dataclass
class QuerySpec:
    """What the search page asks: prompts, refinements and filters (all optional but one of
    ``prompts`` / ``images`` / ``text_in_frame``)."""

    prompts: list[str] = dataclasses.field(default_factory=list)
    negatives: list[str] = dataclasses.field(default_factory=list)
    images: list[str] = dataclasses.field(default_factory=list)
    text_in_frame: str | None = None
    video_glob: str | None = None
    after: str | None = None
    before: str | None = None
    top: int = 10
    min_score: float | None = None
    smooth_s: float = 3.0

    def __post_init__(self) -> None:
        self.prompts = [p.strip() for p in self.prompts if p and p.strip()]
        self.negatives = [p.strip() for p in self.negatives if p and p.strip()]
        self.text_in_frame = (self.text_in_frame or "").strip() or None
        self.video_glob = (self.video_glob or "").strip() or None
        if not self.prompts and not self.images and not self.text_in_frame:
            raise UserError("empty query: say what to look for (a prompt, an example image or on-screen text)")
        if self.negatives and not (self.prompts or self.images):
            raise UserError("negative prompts steer a visual query: give a prompt or an example image too")
        if not 1 <= int(self.top) <= 500:
            raise UserError("top must be between 1 and 500")

    @property
    def visual(self) -> bool:
        return bool(self.prompts or self.images)


@dataclasses.dataclass
class Feedback:
    """A range a person marked: relevant (a positive example) or not (a negative one)."""

    video_id: str
    start: float
    end: float
    relevant: bool


@dataclasses.dataclass
class ReviewResult:
    result: QueryResult
    timelines: list[dict]
    feedback_frames: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.result.to_dict(), "timelines": self.timelines, "feedback_frames": self.feedback_frames}


def range_rows(index: FrameIndex, rows_by_code: dict[int, np.ndarray], video_id: str, start: float, end: float) -> np.ndarray:
    """Row indices of the frames of ``video_id`` inside ``[start, end]``."""
    try:
        code = index.videos.index(video_id)
    except ValueError:
        return np.zeros(0, dtype=np.int64)
    rows = rows_by_code.get(code, np.zeros(0, dtype=np.int64))
    pts = index.pts[rows]
    return rows[(pts >= start - 1e-6) & (pts <= end + 1e-6)]


def rocchio(query: np.ndarray, relevant: np.ndarray, irrelevant: np.ndarray,
            alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> np.ndarray:
    """``alpha*q + beta*mean(relevant) - gamma*mean(irrelevant)``, re-normalised (pure)."""
    q = alpha * np.asarray(query, dtype=np.float64)
    if len(relevant):
        q = q + beta * _unit_rows(relevant).mean(axis=0)
    if len(irrelevant):
        q = q - gamma * _unit_rows(irrelevant).mean(axis=0)
    n = float(np.linalg.norm(q))
    return (q / n if n > 0 else q).astype(np.float32)


def _unit_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(n > 0, n, 1.0)


def apply_feedback(index: FrameIndex, query: np.ndarray, feedback: Sequence[Feedback]) -> tuple[np.ndarray, dict[str, int]]:
    """The query moved towards the relevant frames and away from the others; frames used per kind."""
    if not feedback:
        return query, {}
    by_code = index.rows_by_video()
    rel = [range_rows(index, by_code, f.video_id, f.start, f.end) for f in feedback if f.relevant]
    irr = [range_rows(index, by_code, f.video_id, f.start, f.end) for f in feedback if not f.relevant]
    rel_rows = np.concatenate(rel) if rel else np.zeros(0, dtype=np.int64)
    irr_rows = np.concatenate(irr) if irr else np.zeros(0, dtype=np.int64)
    emb_rows = index.whole_frame_rows
    moved = rocchio(query, index.emb[emb_rows(rel_rows)], index.emb[emb_rows(irr_rows)])
    return moved, {"relevant": int(len(rel_rows)), "not_relevant": int(len(irr_rows))}


def review_query(store, encoder, index: FrameIndex, spec: QuerySpec, feedback: Sequence[Feedback] = (),
                 points: int = 400) -> ReviewResult:
    """Ranked ranges for ``spec`` (after ``feedback``), plus the smoothed score timeline of every
    video with a hit, from a single scan of the frame matrix."""
    after, before = parse_when(spec.after), parse_when(spec.before)
    text = _text_ranges(store, spec, after, before) if spec.text_in_frame else None
    if not spec.visual:
        return ReviewResult(text, [])
    pos, negs = query_vectors(encoder, spec.prompts, spec.negatives, spec.images)
    label = query_label(spec.prompts, spec.negatives, spec.images)
    if feedback:
        label += f" (refined: {sum(f.relevant for f in feedback)} relevant, {sum(not f.relevant for f in feedback)} not)"
    used: dict[str, int] = {}
    if np.any(pos) and len(index):
        pos, used = apply_feedback(index, pos, feedback)
        scores = index.scores(pos)
        scores = contrast_scores(scores, [index.scores(n) for n in negs]) if negs else scores
        result = search_vector(store, index, pos, label=label, semantics=encoder.info.semantics, scores=scores,
                               top=None if text else spec.top, min_score=spec.min_score, video_glob=spec.video_glob,
                               smooth_s=spec.smooth_s, after=after, before=before)
    else:  # e.g. the colour demo model asked about something that is not a colour
        scores = None
        result = QueryResult(label, index.model_id, encoder.info.semantics, float("inf"), len(index), [], 0.0)
    result.prompts, result.negatives, result.images = list(spec.prompts), list(spec.negatives), list(spec.images)
    result.smooth_s = spec.smooth_s
    if text is not None:
        from vidsearch.query.text import visual_and_text

        result = visual_and_text(result, text, spec.top)
    timelines = video_timelines(index, result, scores, points) if scores is not None else []
    return ReviewResult(result, timelines, used)


def _text_ranges(store, spec: QuerySpec, after, before) -> QueryResult:
    from vidsearch.query.text import text_ranges

    return text_ranges(store, spec.text_in_frame, top=None if spec.visual else spec.top,
                       min_score=None if spec.visual else spec.min_score, video_glob=spec.video_glob,
                       after=after, before=before)


def video_timelines(index: FrameIndex, result: QueryResult, scores: np.ndarray, points: int = 400) -> list[dict]:
    """Per video with a range: the smoothed score over the whole video (at most ``points`` samples,
    the best of each bin so peaks survive), the threshold and the ranges."""
    codes = {v: c for c, v in enumerate(index.videos)}
    by_code = index.rows_by_video()
    out, seen = [], []
    for r in result.ranges:
        if r.video_id not in seen and r.video_id in codes:
            seen.append(r.video_id)
    for vid in seen:
        rows = by_code.get(codes[vid], np.zeros(0, dtype=np.int64))
        pts = index.pts[rows]
        t, s = downsample(pts, smooth(pts, scores[rows], result.smooth_s or 0.0), points)
        out.append({
            "video_id": vid, "path": next(r.path for r in result.ranges if r.video_id == vid),
            "threshold": round(result.threshold, 5) if np.isfinite(result.threshold) else None,
            "t": np.round(t, 3).tolist(), "s": np.round(s, 5).tolist(),
            "ranges": [[round(r.start, 3), round(r.end, 3)] for r in result.ranges if r.video_id == vid],
        })
    return out


def downsample(t: np.ndarray, s: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` (time, score) pairs: the highest score of each equal-count bin (pure)."""
    n = len(t)
    if n <= points:
        return t, s
    edges = (np.arange(points + 1) * n) // points  # equal-count bins, as np.array_split
    best = np.maximum.reduceat(s, edges[:-1])
    # the first index in each bin holding the bin's maximum
    idx = np.flatnonzero(s == np.repeat(best, np.diff(edges)))
    first = idx[np.searchsorted(idx, edges[:-1])]
    return t[first], s[first]


def compare(before: Sequence[dict], after: Sequence[dict], overlap: float = 0.5) -> dict:
    """What refining changed: for each new range its earlier rank (None: new), and the earlier
    ranges that are gone. Ranges match when they share a video and overlap by ``overlap`` of the shorter."""

    def same(a: dict, b: dict) -> bool:
        if a["video_id"] != b["video_id"]:
            return False
        inter = min(a["end"], b["end"]) - max(a["start"], b["start"])
        shorter = max(min(a["end"] - a["start"], b["end"] - b["start"]), 1e-6)
        return inter / shorter >= overlap

    was, matched = [], set()
    for r in after:
        hit = next((i for i, a in enumerate(before) if i not in matched and same(a, r)), None)
        if hit is not None:
            matched.add(hit)
        was.append(None if hit is None else hit + 1)
    gone = [dict(a, rank=i + 1) for i, a in enumerate(before) if i not in matched]
    return {"was_rank": was, "dropped": gone}
