"""Query engine: score every indexed frame against a query, return ranked time ranges.

Also the frame selection (path glob, recorded time) and per-video series that retrospection shares.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.clip import contrast_scores
from vidsearch.core.ranges import TimeRange, adaptive_threshold, mark_weak, rank, video_ranges
from vidsearch.index.meta import read_meta
from vidsearch.index.frames import FrameIndex, load_frame_index  # noqa: F401 - re-exported
from vidsearch.index.shards import IndexStore
from vidsearch.core.timeparse import parse_creation_time, parse_when, recorded_mask
from vidsearch.errors import IndexUnusableError, UserError
from vidsearch.query import stages
from vidsearch.query.vectors import query_label, query_vectors


@dataclasses.dataclass
class QueryResult:
    query: str
    model_id: str
    semantics: str
    threshold: float
    frames_scanned: int
    ranges: list[TimeRange]
    seconds: float
    #: what was asked, in full (``query`` is a one-line label): positive prompts, negative
    #: prompts, example image paths, the smoothing window; ``vidsearch export`` re-scores with them
    prompts: list[str] = dataclasses.field(default_factory=list)
    negatives: list[str] = dataclasses.field(default_factory=list)
    images: list[str] = dataclasses.field(default_factory=list)
    smooth_s: float | None = None
    #: videos left out by --after/--before because the file carries no creation time
    skipped_no_time: int = 0
    #: which search ran: "full" (every frame scored), "flat" (fused exact scan, then exact windows)
    #: or "two-stage" (compressed first stage, then exact windows); how many candidate frames it
    #: took, and whether they settled the answer (False: the candidate cap was reached first)
    search: str = "full"
    candidates: int | None = None
    complete: bool = True

    def to_dict(self) -> dict:
        return {
            "query": self.query, "model_id": self.model_id, "semantics": self.semantics,
            "threshold": round(self.threshold, 5) if np.isfinite(self.threshold) else None,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4),
            "prompts": list(self.prompts), "negatives": list(self.negatives), "images": list(self.images),
            "smooth_s": self.smooth_s, "skipped_no_time": self.skipped_no_time,
            "search": self.search, "candidates": self.candidates, "complete": self.complete,
            "ranges": [r.to_dict() for r in self.ranges],
        }




def search_vector(
    store: IndexStore,
    index: FrameIndex,
    query_vec: np.ndarray,
    *,
    label: str,
    semantics: str = "clip",
    top: int = 10,
    min_score: float | None = None,
    video_glob: str | None = None,
    smooth_s: float = 3.0,
    scores: np.ndarray | None = None,
    after: _dt.datetime | None = None,
    before: _dt.datetime | None = None,
    search: str = "auto",
) -> QueryResult:
    """Ranked ranges of ``query_vec`` (or of precomputed per-frame ``scores``).

    ``search``: "auto" picks the path (see :func:`search_path`); "full", "flat" and "two-stage" force one.
    """
    t0 = time.perf_counter()
    path = search_path(index, search, custom_scores=scores is not None, filtered=bool(video_glob or after or before))
    if path == "full":
        result = _full_search(store, index, query_vec, label=label, semantics=semantics, top=top, min_score=min_score,
                              video_glob=video_glob, smooth_s=smooth_s, scores=scores, after=after, before=before)
    else:
        result = _staged_search(store, index, query_vec, path, label=label, semantics=semantics, top=top,
                                min_score=min_score, smooth_s=smooth_s)
    result.seconds = time.perf_counter() - t0
    return result


def search_path(index: FrameIndex, asked: str = "auto", *, custom_scores: bool = False, filtered: bool = False) -> str:
    """Which search runs: "full" (score every frame: small indexes, negative prompts, path or time
    filters, no faiss), "flat" (faiss's fused exact scan) or "two-stage" (the coarse stage of a big
    index, then exact windows)."""
    if asked not in ("auto", "full", "flat", "two-stage"):
        raise ValueError(f"unknown search path {asked!r}")
    if asked != "auto":
        return asked
    if custom_scores or filtered or index.has_regions or len(index) <= 4 * stages.SAMPLE_ROWS:
        return "full"  # (regions: a frame is several rows; the staged paths score rows)
    coarse = index.coarse_stage()
    if coarse is not None and len(index) - coarse.rows <= max(len(index) // 4, 1):
        return "two-stage"
    return "flat" if index.flat_scan() is not None else "full"


def _staged_search(store, index, query_vec, path, *, label, semantics, top, min_score, smooth_s) -> QueryResult:
    q = np.asarray(query_vec, dtype=np.float32)
    first = _first_stage(index, path)
    facts = video_facts(store)
    k, median = first.k, None
    while True:
        cand = first.candidates(index, first.stage, q, k, median)
        median = cand.median
        threshold = stages.threshold_of(cand.best, median, min_score) if len(cand.scores) else float("inf")
        found = stages.candidate_ranges(index, cand, q, threshold, durations=facts.durations, smooth_s=smooth_s,
                                        top=top)
        ranked = rank(found, top)
        if stages.settled(cand, threshold, ranked, top) or k >= first.max_k:
            break
        k *= 4
    for r in ranked:
        r.path = facts.paths.get(r.video_id)
    return QueryResult(query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
                       frames_scanned=len(index), ranges=ranked, seconds=0.0, smooth_s=smooth_s,
                       search=cand.path, candidates=len(cand.rows),
                       complete=stages.settled(cand, threshold, ranked, top))


@dataclasses.dataclass
class _FirstStage:
    stage: object
    candidates: object  # stages.flat_candidates or stages.coarse_candidates
    k: int
    max_k: int


def _first_stage(index: FrameIndex, path: str) -> _FirstStage:
    if path == "two-stage":
        coarse = index.coarse_stage(min_rows=0)
        if coarse is None:
            raise UserError("no coarse stage for this index (it is built by `vidsearch ingest` past "
                            "a few million frames, with the scale extra installed)")
        return _FirstStage(coarse, stages.coarse_candidates, stages.COARSE_CANDIDATES, stages.MAX_COARSE_CANDIDATES)
    scan = index.flat_scan()
    if scan is None:
        raise UserError("the flat scan needs faiss: pip install 'vidsearch[scale]'")
    return _FirstStage(scan, stages.flat_candidates, stages.CANDIDATES, max(len(index), 1))


def _full_search(store, index, query_vec, *, label, semantics, top, min_score, video_glob, smooth_s, scores,
                 after, before) -> QueryResult:
    sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    paths, durations, groups = sel.paths, sel.durations, sel.groups
    if scores is None:
        scores = index.scores(query_vec) if len(index) else np.zeros(0, np.float32)
    n_considered = sum(len(g) for g in groups.values())
    if n_considered == len(scores):  # every row (the groups are disjoint): no gather
        threshold = sampled_threshold(scores, min_score) if n_considered else float("inf")
    else:
        considered = np.concatenate(list(groups.values())) if groups else np.zeros(0, dtype=np.int64)
        threshold = sampled_threshold(scores[considered], min_score) if len(considered) else float("inf")
    found: list[TimeRange] = []
    for code, rows in groups.items():
        vid = index.videos[code]
        if not len(rows) or scores[rows].max() < threshold - 1e-9:
            continue  # a smoothed score never exceeds the video's best frame: no range here
        for r in video_ranges(vid, index.pts[rows], scores[rows], threshold, smooth_s=smooth_s, duration=durations.get(vid)):
            r.path = paths.get(vid)
            found.append(r)
    _mark_weak(found, scores, groups, index)
    ranked = rank(found, top)
    set_peak_boxes(index, groups, ranked, query_vec)
    return QueryResult(
        query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
        frames_scanned=int(n_considered), ranges=ranked, seconds=0.0,
        smooth_s=smooth_s, skipped_no_time=sel.skipped_no_time,
    )


def _mark_weak(found: list[TimeRange], scores: np.ndarray, groups: dict[int, np.ndarray], index: FrameIndex) -> None:
    """Flag ranges whose peak does not stand out (:func:`vidsearch.core.ranges.mark_weak`)."""
    if not found:
        return
    hit = {r.video_id for r in found}
    per_video = {index.videos[c]: scores[g] for c, g in groups.items() if index.videos[c] in hit}
    whole = scores if sum(len(g) for g in groups.values()) == len(scores) else scores[np.concatenate(list(groups.values()))]
    mark_weak(found, whole, per_video)


def set_peak_boxes(index: FrameIndex, groups: dict[int, np.ndarray], ranges: Sequence[TimeRange], query_vec: np.ndarray) -> None:
    """Set each range's ``box``: where in its peak frame the best region for ``query_vec`` is (an
    index with regions only; a frame's score is the best of its regions, with no blend)."""
    if not index.has_regions:
        return
    rows_of = {index.videos[c]: rows for c, rows in groups.items()}
    for r in ranges:
        rows = rows_of.get(r.video_id)
        if rows is not None and len(rows):
            i = min(int(np.searchsorted(index.pts[rows], r.peak_time - 1e-6)), len(rows) - 1)
            r.box = index.peak_box(int(rows[i]), query_vec)


def sampled_threshold(scores: np.ndarray, min_score: float | None) -> float:
    """:func:`adaptive_threshold` with the median taken on an even spread of at most
    ``4 * SAMPLE_ROWS`` scores (exact below that)."""
    if len(scores) <= 4 * stages.SAMPLE_ROWS:
        return adaptive_threshold(scores, min_score)
    spread = scores[np.linspace(0, len(scores) - 1, num=stages.SAMPLE_ROWS).astype(np.int64)]
    return stages.threshold_of(float(np.max(scores)), float(np.median(spread)), min_score)


def _glob_match(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) or fnmatch.fnmatch(path, f"*{pattern}*")


def text_query(
    store: IndexStore,
    encoder,
    texts: Sequence[str],
    index: FrameIndex | None = None,
    negatives: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    **kw,
) -> QueryResult:
    """Embed ``texts`` (several prompts are averaged) and search.

    ``images``: example images whose embeddings join the positive prompts (query by example).
    ``negatives``: prompts to steer away from; see :func:`vidsearch.core.clip.contrast_scores` for the formula.
    """
    texts = [t for t in texts if t and t.strip()]
    if not texts and not images:
        raise UserError("empty query: say what to look for, e.g. vidsearch query \"person in a red jacket\" (or --image PATH)")
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    label = query_label(texts, negatives, images)
    pos, negs = query_vectors(encoder, texts, negatives, images)
    extra = dict(prompts=list(texts), negatives=list(negatives), images=[str(p) for p in images],
                 smooth_s=kw.get("smooth_s", 3.0))
    if not np.any(pos):
        # e.g. the colour demo model asked about something that is not a colour
        sel = select_frames(store, index, video_glob=kw.get("video_glob"), after=kw.get("after"), before=kw.get("before"))
        return QueryResult(label, index.model_id, encoder.info.semantics, float("inf"), sum(len(g) for g in sel.groups.values()),
                           [], 0.0, skipped_no_time=sel.skipped_no_time, **extra)
    scores = contrast_scores(index.scores(pos), [index.scores(n) for n in negs]) if len(negs) and len(index) else None
    result = search_vector(store, index, pos, label=label, semantics=encoder.info.semantics, scores=scores, **kw)
    result.prompts, result.negatives, result.images = extra["prompts"], extra["negatives"], extra["images"]
    return result


@dataclasses.dataclass
class VideoFacts:
    paths: dict[str, str]
    durations: dict[str, float]
    created: dict[str, str | None]  # creation_time as the catalog stores it


def video_facts(store: IndexStore) -> VideoFacts:
    """Each video's path, duration and creation time (from the JSON beside the matrices: no DuckDB)."""
    meta = read_meta(store)
    if meta is None:
        raise IndexUnusableError(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
    return VideoFacts({v: p for v, (p, _, _) in meta.videos.items()}, {v: d for v, (_, d, _) in meta.videos.items()},
                      {v: c for v, (_, _, c) in meta.videos.items()})


@dataclasses.dataclass
class FrameSelection:
    """The frames a query looks at: row indices per video code, after the video and time filters."""

    groups: dict[int, np.ndarray]  # video code -> row indices in time order
    paths: dict[str, str]
    durations: dict[str, float]
    created: dict[str, _dt.datetime | None]
    skipped_no_time: int = 0


def select_frames(
    store: IndexStore,
    index: FrameIndex,
    *,
    video_glob: str | None = None,
    after: _dt.datetime | None = None,
    before: _dt.datetime | None = None,
) -> FrameSelection:
    """Rows of ``index`` per video, filtered by path glob and by recorded time.

    Recorded time of a frame = the file's ``creation_time`` + the frame's pts. With ``after`` /
    ``before`` only frames recorded in ``[after, before)`` count; videos whose file carries no
    creation time are left out (and counted in ``skipped_no_time``).
    """
    facts = video_facts(store)
    paths, durations = facts.paths, facts.durations
    created = {v: parse_creation_time(c) for v, c in facts.created.items()}
    groups = index.rows_by_video()
    if video_glob:
        groups = {c: g for c, g in groups.items() if _glob_match(paths.get(index.videos[c], ""), video_glob)}
    skipped = 0
    after, before = parse_when(after), parse_when(before)
    if after is not None or before is not None:
        kept = {}
        for c, g in groups.items():
            mask = recorded_mask(created.get(index.videos[c]), index.pts[g], after, before)
            if mask is None:
                skipped += 1
            elif mask.any():
                kept[c] = g[mask]
        groups = kept
    return FrameSelection(groups, paths, durations, created, skipped)


@dataclasses.dataclass
class VideoSeries:
    """One video's frame times and scores (time order), for events, labels and plots."""

    video_id: str
    path: str | None
    duration: float | None
    creation_time: _dt.datetime | None
    pts: np.ndarray
    values: np.ndarray  # [N] scores, or [N, K] per-label values


def video_series(index: FrameIndex, sel: FrameSelection, values: np.ndarray) -> list[VideoSeries]:
    """Split per-frame ``values`` (row-aligned with ``index``) into one series per selected video, by path."""
    out = []
    for code, rows in sel.groups.items():
        vid = index.videos[code]
        out.append(VideoSeries(vid, sel.paths.get(vid), sel.durations.get(vid), sel.created.get(vid), index.pts[rows], values[rows]))
    return sorted(out, key=lambda s: (s.path or "", s.video_id))
