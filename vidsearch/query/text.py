"""On-screen text search: queries over what the OCR channel read (exact, fuzzy, semantic), as ranges.

The query-side reader of :mod:`vidsearch.ocr.channel`: lines come from its per-video copy
(:mod:`vidsearch.ocr.textcache`), matching from :mod:`vidsearch.ocr.textmatch`; ``visual_and_text``
keeps the ranges where a visual query and a text query both hold.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.ranges import TimeRange, merge_runs, rank, runs_above
from vidsearch.core.timeparse import parse_creation_time, parse_when, recorded_mask
from vidsearch.errors import IndexUnusableError, UserError
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore
from vidsearch.ocr import textcache
from vidsearch.ocr import textmatch as tm
from vidsearch.ocr.channel import OCR_CHANNEL, OCR_FPS, check_embedder, shared_embedder
from vidsearch.ocr.schema import TEXT_DIM
from vidsearch.query.engine import QueryResult, _glob_match

@dataclasses.dataclass
class TextRange(TimeRange):
    """A time range where the text was seen: what was read at the peak, and how it matched."""

    text: str | None = None
    match: str | None = None  # exact | fuzzy | semantic
    # ``box`` (TimeRange's): x0, y0, x1, y1 of that line (fractions of the frame)


def hit_ranges(
    video_id: str, pts: np.ndarray, scores: np.ndarray, step: float = 1 / OCR_FPS,
    duration: float | None = None, max_gap_s: float | None = None,
) -> list[TimeRange]:
    """Ranges of frames read with a positive score (pure).

    Each frame read covers the time until the next frame read, at most ``step``; runs of hits
    whose frames are at most ``max_gap_s`` apart (default two steps: one missed read between)
    merge. A range's score is its best frame's.
    """
    order = np.argsort(pts, kind="stable")
    pts = np.asarray(pts, dtype=np.float64)[order]
    scores = np.asarray(scores, dtype=np.float64)[order]
    if not len(pts):
        return []
    ends = np.minimum(pts + step, np.append(pts[1:], np.inf))
    if duration is not None:
        ends = np.minimum(ends, max(duration, float(pts[-1])))
    gap = 2 * step + 1e-6 if max_gap_s is None else max_gap_s
    out = []
    for i0, i1 in merge_runs(pts, runs_above(scores, 1e-9), gap):
        seg = scores[i0 : i1 + 1]
        k = int(np.argmax(seg))
        out.append(TimeRange(
            video_id=video_id, start=float(pts[i0]), end=float(ends[i1]), peak_time=float(pts[i0 + k]),
            peak_score=float(seg[k]), score=float(seg[k]), frames=int((seg > 0).sum()),
        ))
    return out


@dataclasses.dataclass
class OcrLines:
    """Every recognised line of the index (row-aligned arrays), its text as a code into ``texts``
    (the distinct texts, each once) and, when read, one sentence vector per distinct text."""

    texts: list[str]
    text_code: np.ndarray  # int32 [rows]
    videos: list[str]
    video_code: np.ndarray  # int32 [rows]
    pts: np.ndarray  # float64 [rows]
    confidence: np.ndarray  # float32 [rows]
    boxes: np.ndarray  # float32 [rows, 4]
    vectors: np.ndarray | None  # float32 [len(texts), TEXT_DIM]

    def best_per_frame(self, scores: np.ndarray, kinds: np.ndarray) -> dict[tuple[str, float], tuple]:
        """For every frame with a matching line: ``(video_id, pts) -> (score, text, kind, box)`` of
        its best line (highest score, then highest OCR confidence)."""
        row_score = np.asarray(scores, dtype=np.float64)[self.text_code] if len(self.text_code) else np.zeros(0)
        hit = np.flatnonzero(row_score > 0)
        if not len(hit):
            return {}
        order = hit[np.lexsort((-self.confidence[hit], -row_score[hit], self.pts[hit], self.video_code[hit]))]
        best: dict[tuple[str, float], tuple] = {}
        for r in order:
            key = (self.videos[self.video_code[r]], float(self.pts[r]))
            if key not in best:
                t = int(self.text_code[r])
                best[key] = (float(row_score[r]), self.texts[t], str(kinds[t]), [round(float(b), 5) for b in self.boxes[r]])
        return best


def _read_lines(files: dict[str, Path], with_vectors: bool = True) -> tuple[OcrLines, dict[str, list[float]]]:
    """Every recognised line of these videos' cache files (:mod:`vidsearch.ocr.textcache`; only the
    columns needed, a sentence vector for the first row of each distinct text only), and every
    video's frames read."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = ["pts", "text", "confidence", "x0", "y0", "x1", "y1"] + (["text_embedding"] if with_vectors else [])
    tables, videos, counts, sampled = [], [], [], {}
    for vid, path in sorted(files.items()):
        t, times = textcache.read(path, cols)
        sampled[vid] = times
        if t.num_rows:
            tables.append(t)
            videos.append(vid)
            counts.append(t.num_rows)
    if not tables:
        empty = OcrLines([], np.zeros(0, np.int32), [], np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.float32),
                         np.zeros((0, 4), np.float32), np.zeros((0, TEXT_DIM), np.float32) if with_vectors else None)
        return empty, sampled
    t = pa.concat_tables(tables)
    d = pc.dictionary_encode(t.column("text").combine_chunks())
    texts, text_code = d.dictionary.to_pylist(), d.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    vectors = None
    if with_vectors:
        _, first = np.unique(text_code, return_index=True)  # codes are 0..len(texts)-1, all present
        col = t.column("text_embedding").combine_chunks().take(pa.array(first))
        vectors = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(texts), -1)
    boxes = np.stack([t.column(c).to_numpy() for c in ("x0", "y0", "x1", "y1")], axis=1).astype(np.float32)
    video_code = np.repeat(np.arange(len(videos), dtype=np.int32), counts)
    lines = OcrLines(texts, text_code, videos, video_code, t.column("pts").to_numpy().astype(np.float64),
                     t.column("confidence").to_numpy().astype(np.float32), boxes, vectors)
    return lines, sampled


def text_ranges(
    store: IndexStore,
    query: str,
    *,
    top: int | None = 10,
    min_score: float | None = None,
    video_glob: str | None = None,
    semantic: bool = True,
    semantic_threshold: float | None = None,
    max_errors: int | None = None,
    embedder=None,
    after=None,
    before=None,
):
    """Ranked ranges where on-screen text matches ``query`` (exact, fuzzy or by meaning).

    Returns a :class:`vidsearch.query.engine.QueryResult` whose ranges are :class:`TextRange`.
    ``semantic=False`` (or no sentence model installed) matches letters only. ``after`` /
    ``before``: only frames recorded in ``[after, before)``, as in :func:`vidsearch.query.engine.select_frames`
    (videos whose file carries no creation time are left out and counted in ``skipped_no_time``).
    """
    t0 = time.perf_counter()
    q = tm.prepare_query(query, max_errors=max_errors)
    if q.empty:
        raise UserError("empty --text-in-frame query: give the words to find, e.g. --text-in-frame \"EMERGENCY EXIT\"")
    files = textcache.refresh(store, OCR_CHANNEL)
    if not files:
        raise IndexUnusableError(f"the index at {store.root} has no on-screen text: run `vidsearch ingest DIR --ocr` first")
    threshold = tm.DEFAULT_SEMANTIC_THRESHOLD if semantic_threshold is None else float(semantic_threshold)
    with Catalog(store, read_only=True) as cat:
        videos = cat.video_meta()
    paths = {v: p for v, p, _, _ in videos}
    if video_glob:
        files = {v: p for v, p in files.items() if _glob_match(paths.get(v, ""), video_glob)}
    if semantic:
        from vidsearch.ocr.sentence import available

        semantic = available()  # else: letters only (the index may have been built on other machines)
    lines, sampled = _read_lines(files, with_vectors=semantic)
    sampled, skipped_no_time = _recorded_between(sampled, videos, after, before)
    qvec = _query_vector(query, lines, embedder) if semantic else None
    scores, kinds = tm.score_lines(q, lines.texts, query_vec=qvec, line_vecs=lines.vectors if qvec is not None else None,
                                   semantic_threshold=threshold)
    best = lines.best_per_frame(scores, kinds)
    durations = {v: d for v, _, d, _ in videos}
    found, frames_scanned = _found_ranges(sampled, best, durations, min_score)
    for r in found:
        r.path = paths.get(r.video_id)
    return QueryResult(
        query=query, model_id=OCR_CHANNEL, semantics="ocr", threshold=threshold,
        frames_scanned=frames_scanned, ranges=rank(found, top), seconds=time.perf_counter() - t0,
        skipped_no_time=skipped_no_time,
    )


def _recorded_between(sampled: dict[str, list[float]], videos: list[tuple], after, before) -> tuple[dict[str, list[float]], int]:
    """The frames read that were recorded in ``[after, before)`` and how many videos were left out
    for want of a creation time (``videos``: :meth:`Catalog.video_meta` rows)."""
    after, before = parse_when(after), parse_when(before)
    if after is None and before is None:
        return sampled, 0
    created = {v: parse_creation_time(c) for v, _, _, c in videos}
    kept: dict[str, list[float]] = {}
    skipped = 0
    for vid, pts_list in sampled.items():
        pts = np.asarray(pts_list, dtype=np.float64)
        mask = recorded_mask(created.get(vid), pts, after, before)
        if mask is None:
            skipped += 1
        elif mask.any():
            kept[vid] = pts[mask].tolist()
    return kept, skipped


def _query_vector(query: str, lines: OcrLines, embedder=None) -> np.ndarray | None:
    """The query's sentence vector (None when the index holds no text to compare it with)."""
    if not lines.texts:
        return None
    emb = embedder or shared_embedder()
    check_embedder(emb)
    return emb.encode([query])[0]


def _found_ranges(sampled: dict[str, list[float]], best: dict[tuple[str, float], tuple], durations: dict[str, float],
                  min_score: float | None) -> tuple[list[TimeRange], int]:
    """(the :class:`TextRange` of every run of hit frames, frames scanned) from each frame's best line."""
    hit_videos = {v for v, _ in best}
    found: list[TimeRange] = []
    frames_scanned = 0
    for vid, pts_list in sampled.items():
        pts = np.unique(np.asarray(pts_list, dtype=np.float64))
        frames_scanned += len(pts)
        if vid not in hit_videos:
            continue
        sc = np.asarray([best.get((vid, float(t)), (0.0,))[0] for t in pts], dtype=np.float64)
        if not (sc > 0).any():
            continue
        for r in hit_ranges(vid, pts, sc, step=1 / OCR_FPS, duration=durations.get(vid)):
            if min_score is not None and r.score < min_score:
                continue
            _score, text, kind, box = best[(vid, r.peak_time)]
            found.append(TextRange(**{**vars(r), "box": box}, text=text, match=kind))
    return found, frames_scanned


def intersect(visual: Sequence[TimeRange], text: Sequence[TimeRange], top: int | None = None) -> list[TimeRange]:
    """Ranges where a visual range and a text range of the same video overlap (pure).

    Score: the visual range's score divided by the best visual score (so 0..1), times the text
    range's score (1.0 exact, up to 0.94 fuzzy, the cosine for semantic). The peak is the text
    range's peak when it lies in the overlap, else the overlap's start; the read text and its
    match kind come from the text range.
    """
    if not visual or not text:
        return []
    top_visual = max(r.score for r in visual) or 1.0
    by_video: dict[str, list[TimeRange]] = {}
    for t in text:
        by_video.setdefault(t.video_id, []).append(t)
    out: list[TimeRange] = []
    for v in visual:
        for t in by_video.get(v.video_id, []):
            start, end = max(v.start, t.start), min(v.end, t.end)
            if end - start <= 1e-6:
                continue
            score = max(v.score, 0.0) / top_visual * t.score
            peak = t.peak_time if start <= t.peak_time < end else start
            out.append(TextRange(
                video_id=v.video_id, start=start, end=end, peak_time=peak, peak_score=score, score=score,
                frames=t.frames, path=v.path or t.path, text=getattr(t, "text", None),
                match=getattr(t, "match", None), box=getattr(t, "box", None),
            ))
    return rank(out, top)


def visual_and_text(visual, text, top: int | None = 10):
    """A visual :class:`QueryResult` and a text one -> the result where both hold (:func:`intersect`);
    everything else (model, threshold, prompts) is the visual result's."""
    return dataclasses.replace(
        visual, query=f"{visual.query} + text-in-frame {text.query!r}",
        frames_scanned=visual.frames_scanned + text.frames_scanned,
        ranges=intersect(visual.ranges, text.ranges, top), seconds=visual.seconds + text.seconds,
    )
