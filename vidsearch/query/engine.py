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
from vidsearch.core.ranges import TimeRange, adaptive_threshold, mark_weak, median, rank, video_ranges
from vidsearch.index.meta import read_meta
from vidsearch.index.frames import FrameIndex, load_frame_index  # noqa: F401 - re-exported
from vidsearch.index.shards import IndexStore
from vidsearch.core.timeparse import parse_creation_time, parse_when, recorded_mask, recorded_window
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
    #: which search ran: "full" (every frame considered scored), "flat" (fused exact scan, then
    #: exact windows) or "two-stage" (compressed first stage, then exact windows); how many
    #: candidate frames it took; ``complete``: proven to be the ranges of scoring every frame
    #: considered (with the same threshold); ``capped``: the candidate cap was reached before the
    #: top ranges outscored what the first stage left out
    search: str = "full"
    candidates: int | None = None
    complete: bool = True
    capped: bool = False

    def to_dict(self) -> dict:
        return {
            "query": self.query, "model_id": self.model_id, "semantics": self.semantics,
            "threshold": round(self.threshold, 5) if np.isfinite(self.threshold) else None,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4),
            "prompts": list(self.prompts), "negatives": list(self.negatives), "images": list(self.images),
            "smooth_s": self.smooth_s, "skipped_no_time": self.skipped_no_time,
            "search": self.search, "candidates": self.candidates, "complete": self.complete, "capped": self.capped,
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
    negatives: Sequence[np.ndarray] = (),
) -> QueryResult:
    """Ranked ranges of ``query_vec`` (or of precomputed per-frame ``scores``), steered away from
    ``negatives`` (vectors: :func:`vidsearch.core.clip.contrast_scores`).

    ``search``: "auto" picks the path (see :func:`search_path`); "full", "flat" and "two-stage" force one.
    """
    t0 = time.perf_counter()
    scorer = stages.Scorer(query_vec, negatives)
    sel = None
    if (video_glob or after or before) and scores is None:
        sel = select_frames(store, index, video_glob=video_glob, after=after, before=before, runs=True)
    path = search_path(index, search, custom_scores=scores is not None, selected=len(sel.rows) if sel else None)
    if path == "full":
        result = _full_search(store, index, scorer, label=label, semantics=semantics, top=top, min_score=min_score,
                              video_glob=video_glob, smooth_s=smooth_s, scores=scores, after=after, before=before, sel=sel)
    else:
        result = _staged_search(store, index, scorer, path, label=label, semantics=semantics, top=top,
                                min_score=min_score, smooth_s=smooth_s, sel=sel)
    result.seconds = time.perf_counter() - t0
    return result


def search_path(index: FrameIndex, asked: str = "auto", *, custom_scores: bool = False, selected: int | None = None) -> str:
    """Which search runs: "full" (score every frame considered: small indexes, no faiss, or filters
    that leave at most a quarter of the rows, which are then the only rows read), "flat" (faiss's
    fused exact scan) or "two-stage" (the coarse stage of a big index, then exact windows)."""
    if asked not in ("auto", "full", "flat", "two-stage"):
        raise ValueError(f"unknown search path {asked!r}")
    if asked != "auto":
        return asked
    if custom_scores or index.has_regions or len(index) <= 4 * stages.SAMPLE_ROWS:
        return "full"  # (regions: a frame is several rows; the staged paths score rows)
    if selected is not None and 4 * selected <= len(index):
        return "full"
    coarse = index.coarse_stage()
    if coarse is not None and len(index) - coarse.rows <= max(len(index) // 4, 1):
        return "two-stage"
    return "flat" if index.flat_scan() is not None else "full"


def _staged_search(store, index, scorer, path, *, label, semantics, top, min_score, smooth_s, sel) -> QueryResult:
    first = _first_stage(index, path)
    facts = sel if sel is not None else video_facts(store)
    rows = sel.rows if sel is not None else None
    k, baseline = first.k, None
    while True:
        cand = first.candidates(index, first.stage, scorer, k, baseline, rows)
        baseline = cand.baseline
        threshold = stages.threshold_of(cand.best, cand.median, min_score) if len(cand.scores) else float("inf")
        found = stages.candidate_ranges(index, cand, scorer, threshold, durations=facts.durations, smooth_s=smooth_s,
                                        top=top, sel=rows)
        ranked = rank(found, top)
        done = stages.settled(cand, threshold, ranked, top)
        if done or k >= first.max_k:
            break
        k *= 4
    stages.mark_weak(index, ranked, cand, scorer, rows)
    for r in ranked:
        r.path = facts.paths.get(r.video_id)
    return QueryResult(query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
                       frames_scanned=len(rows) if rows is not None else len(index), ranges=ranked, seconds=0.0,
                       smooth_s=smooth_s, skipped_no_time=sel.skipped_no_time if sel is not None else 0,
                       search=cand.path, candidates=len(cand.rows), complete=done and cand.proven, capped=not done)


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


def _full_search(store, index, scorer, *, label, semantics, top, min_score, video_glob, smooth_s, scores,
                 after, before, sel) -> QueryResult:
    if sel is None:
        sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    paths, durations, groups = sel.paths, sel.durations, sel.video_groups()
    if scores is None:
        scores = _scores(index, scorer, sel.rows)
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
    set_peak_boxes(index, groups, ranked, scorer.query)
    return QueryResult(
        query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
        frames_scanned=int(n_considered), ranges=ranked, seconds=0.0,
        smooth_s=smooth_s, skipped_no_time=sel.skipped_no_time,
    )


def _scores(index: FrameIndex, scorer: stages.Scorer, rows: stages.RowSelection | None) -> np.ndarray:
    """Every frame's score; with a row selection only the selected rows are read and scored (the
    rest of the array is never written: its pages are not even allocated)."""
    if rows is None:
        if not len(index):
            return np.zeros(0, np.float32)
        pos = index.scores(scorer.query)
        return contrast_scores(pos, [index.scores(n) for n in scorer.negatives]) if scorer.negatives else pos
    out = np.empty(len(index), np.float32)
    for r0, n in rows.ordered_runs():
        out[r0 : r0 + n] = scorer.frame_run(index, r0, n)
    return out


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
    return stages.threshold_of(float(np.max(scores)), median(spread), min_score)


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
    result = search_vector(store, index, pos, label=label, semantics=encoder.info.semantics, negatives=negs, **kw)
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

    groups: dict[int, np.ndarray] | None  # video code -> row indices in time order (with ``rows``: on demand)
    paths: dict[str, str]
    durations: dict[str, float]
    created: dict[str, _dt.datetime | None]
    skipped_no_time: int = 0
    #: the same rows as runs (``select_frames(runs=True)``): what a query reads and scores
    rows: stages.RowSelection | None = None

    def video_groups(self) -> dict[int, np.ndarray]:
        if self.groups is None:
            self.groups = {c: np.concatenate([np.arange(r0, r0 + n, dtype=np.int64) for r0, n in r])
                           for c, r in self.rows.runs.items()}
        return self.groups


def select_frames(
    store: IndexStore,
    index: FrameIndex,
    *,
    video_glob: str | None = None,
    after: _dt.datetime | None = None,
    before: _dt.datetime | None = None,
    runs: bool = False,
) -> FrameSelection:
    """Rows of ``index`` per video, filtered by path glob and by recorded time.

    Recorded time of a frame = the file's ``creation_time`` + the frame's pts. With ``after`` /
    ``before`` only frames recorded in ``[after, before)`` count; videos whose file carries no
    creation time are left out (and counted in ``skipped_no_time``). ``runs`` (an index without
    regions): the selection as row runs too, per-row arrays only when asked for.
    """
    facts = video_facts(store)
    created = {v: parse_creation_time(c) for v, c in facts.created.items()}
    after, before = parse_when(after), parse_when(before)

    def rows_in_window(when: _dt.datetime, g: np.ndarray) -> np.ndarray | None:
        mask = recorded_mask(when, index.pts[g], after, before)
        return g[mask] if mask.any() else None

    def runs_in_window(when: _dt.datetime, r: list) -> list | None:
        # each run's window found by bisecting its frame times: a few pages read, not every frame time
        windows = [(r0, recorded_window(when, index.pts[r0 : r0 + n], after, before)) for r0, n in r]
        return [(r0 + lo, hi - lo) for r0, (lo, hi) in windows if hi > lo] or None

    if runs:
        kept, skipped = _filter_videos(index, index.video_runs(), facts.paths, created, video_glob, after, before,
                                       runs_in_window)
        return FrameSelection(None, facts.paths, facts.durations, created, skipped, rows=stages.RowSelection(kept))
    kept, skipped = _filter_videos(index, index.rows_by_video(), facts.paths, created, video_glob, after, before,
                                   rows_in_window)
    return FrameSelection(kept, facts.paths, facts.durations, created, skipped)


def _filter_videos(index: FrameIndex, rows: dict, paths: dict, created: dict, video_glob, after, before,
                   in_window) -> tuple[dict, int]:
    """``rows`` (video code -> its rows, as indices or runs) of the videos whose path matches
    ``video_glob``, cut to ``[after, before)`` by ``in_window(creation time, rows)`` (None: none
    left); and how many videos were left out for carrying no creation time."""
    if video_glob:
        rows = {c: g for c, g in rows.items() if _glob_match(paths.get(index.videos[c], ""), video_glob)}
    if after is None and before is None:
        return rows, 0
    kept, skipped = {}, 0
    for c, g in rows.items():
        when = created.get(index.videos[c])
        if when is None:
            skipped += 1
        elif (cut := in_window(when, g)) is not None:
            kept[c] = cut
    return kept, skipped


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
