"""Ingest orchestration: scan -> fingerprint -> probe -> plan -> embed chunks -> shards -> catalog.

Stages live in their own modules (``plan``, ``video``, ``preprocess``, ``encoder``, ``store``);
this module wires them. :func:`embed_chunk` is the unit of work shared by the in-process
backend and the Celery workers.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from .errors import UserError, VideoError, one_line
from .model import ModelInfo, sha256_file
from .plan import DEFAULT_CHUNK_S, ChunkSpec, Sampling, is_video_name, plan_video
from .preprocess import center_crop, to_tensor
from .store import IndexStore
from .video import VideoInfo, file_signature, iter_frames, probe

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestOptions:
    chunk_s: float = DEFAULT_CHUNK_S
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    batch_size: int = 32


@dataclasses.dataclass
class Failure:
    path: str
    error: str
    start: float | None = None
    end: float | None = None


@dataclasses.dataclass
class IngestPlan:
    todo: list[ChunkSpec]
    skipped: int  # chunks already done
    videos: dict[str, str]  # video_id -> path
    durations: dict[str, float]
    failures: list[Failure]
    files_seen: int
    stale: list[dict]  # done chunks of these videos planned with other settings (removed after success)

    @property
    def seconds_todo(self) -> float:
        return sum(s.end - s.start for s in self.todo)


@dataclasses.dataclass
class IngestReport:
    files_seen: int = 0
    videos: int = 0
    chunks_done: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    frames: int = 0
    seconds_indexed: float = 0.0
    wall_s: float = 0.0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    model_id: str = ""
    providers: list[str] = dataclasses.field(default_factory=list)
    backend: str = "local"
    pending: int = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [dataclasses.asdict(f) for f in self.failures]
        return d


# -- stage 1: scan ---------------------------------------------------------------------------
def scan(roots: Sequence[str | os.PathLike], exclude: Iterable[Path] = ()) -> tuple[list[Path], list[Failure]]:
    """Video files under ``roots`` (recursively, by extension), sorted; missing roots become failures."""
    excluded = {Path(p).absolute() for p in exclude}
    found: list[Path] = []
    failures: list[Failure] = []
    for root in roots:
        root = Path(root).expanduser().absolute()
        if not root.exists():
            failures.append(Failure(str(root), f"{root}: no such file or directory"))
            continue
        if root.is_file():
            found.append(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: failures.append(Failure(str(e.filename), f"{e.filename}: {e.strerror}"))):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and Path(dirpath, d).absolute() not in excluded)
            found.extend(Path(dirpath, f) for f in sorted(filenames) if is_video_name(f))
    return sorted(set(found)), failures


# -- stage 2: fingerprint + probe + plan -----------------------------------------------------
def prepare(
    store: IndexStore,
    roots: Sequence[str | os.PathLike],
    model: ModelInfo,
    options: IngestOptions,
    on_file: Callable[[Path], None] | None = None,
) -> IngestPlan:
    """Everything that must happen before embedding; records failures and videos in the catalog."""
    paths, failures = scan(roots, exclude=[store.root])
    sampling = options.sampling
    todo: list[ChunkSpec] = []
    skipped = 0
    videos: dict[str, str] = {}
    durations: dict[str, float] = {}
    stale: list[dict] = []
    with store.catalog() as cat:
        cat.register_model(model.model_id, model.name, model.dim, model.to_json())
        for f in failures:
            cat.record_file(f.path, None, None, None, "failed", f.error)
        done_by_video: dict[str, list[dict]] = {}
        for kind, rec in store.iter_records(model.model_id):
            if kind == "done":
                done_by_video.setdefault(rec["video_id"], []).append(rec)
        for path in paths:
            if on_file:
                on_file(path)
            spath = str(path)
            try:
                size, mtime_ns = file_signature(path)
                video_id = cat.cached_video_id(spath, size, mtime_ns)
                known = None
                if video_id:
                    row = cat.con.execute(
                        "SELECT duration, width, height, fps, codec, creation_time FROM videos WHERE video_id = ?", [video_id]
                    ).fetchone()
                    if row:
                        known = VideoInfo(spath, row[0], row[1], row[2], row[3], row[4], None, row[5])
                info = known or probe(path)
                video_id = video_id or sha256_file(path)
            except VideoError as e:
                failures.append(Failure(spath, str(e)))
                cat.record_file(spath, *_sig_or_none(path), None, "failed", str(e))
                continue
            except OSError as e:
                msg = f"{spath}: cannot read file ({e.strerror or e})"
                failures.append(Failure(spath, msg))
                cat.record_file(spath, None, None, None, "failed", msg)
                continue
            cat.upsert_video(video_id, info.to_dict(), size)
            if video_id in videos:  # the same content at another path: index it once
                cat.record_file(spath, size, mtime_ns, video_id, "duplicate", f"same content as {videos[video_id]}")
                continue
            videos[video_id] = spath
            durations[video_id] = info.duration
            specs = plan_video(video_id, spath, info.duration, model.model_id, sampling, options.chunk_s)
            planned = {s.chunk_id for s in specs}
            stale.extend(r for r in done_by_video.get(video_id, []) if r["chunk_id"] not in planned)
            pending = [s for s in specs if not store.is_done(s)]
            skipped += len(specs) - len(pending)
            todo.extend(pending)
            cat.record_file(spath, size, mtime_ns, video_id, "pending" if pending else "indexed")
        cat.mark_pending(todo)
    return IngestPlan(todo, skipped, videos, durations, failures, len(paths), stale)


def _sig_or_none(path: Path) -> tuple[int | None, int | None]:
    try:
        return file_signature(path)
    except OSError:
        return None, None


# -- stage 3: decode + embed one chunk -------------------------------------------------------
class ImageEncoder(Protocol):
    info: ModelInfo

    def encode_images(self, pixels: np.ndarray) -> np.ndarray: ...


def _prefetch(gen: Iterator, maxsize: int) -> Iterator:
    """Run ``gen`` in a thread so decoding overlaps inference; re-raises its exceptions here."""
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    t = threading.Thread(target=worker, daemon=True, name="vidsearch-decode")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if hasattr(gen, "close"):
            t.join(timeout=5)


def sampled_crops(spec: ChunkSpec, info: ModelInfo) -> Iterator[tuple[float, np.ndarray]]:
    """(pts, square uint8 crop) for every sampled frame of the chunk."""
    sampling = Sampling.parse(spec.sampling)
    for t, img in iter_frames(spec.path, spec.start, spec.end, sampling, info.image_size):
        yield t, center_crop(img, info.image_size)


def embed_frames(
    frames: Iterable[tuple[float, np.ndarray]], encoder: ImageEncoder, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batch (pts, crop) pairs through the image encoder; returns (pts [N], embeddings [N, dim])."""
    info = encoder.info
    pts: list[float] = []
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for t, crop in frames:
        pts.append(t)
        batch.append(crop)
        if len(batch) >= batch_size:
            out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
            batch = []
    if batch:
        out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
    emb = np.concatenate(out) if out else np.zeros((0, info.dim), dtype=np.float32)
    return np.asarray(pts, dtype=np.float64), emb


def embed_chunk(spec: ChunkSpec, encoder: ImageEncoder, store: IndexStore, batch_size: int = 32) -> dict:
    """Decode, embed and store one chunk; returns its done marker. Skips a chunk already done.

    Raises :class:`VideoError` for a chunk that yields no frame where frames were expected
    (a truncated file), after recording it as failed.
    """
    if store.is_done(spec):
        import json

        return {**json.loads(store.marker_path(spec).read_text()), "skipped": True}
    if encoder.info.model_id != spec.model_id:
        raise UserError(f"chunk was planned for model {spec.model_id} but this worker runs {encoder.info.model_id}")
    t0 = time.perf_counter()
    try:
        pts, emb = embed_frames(_prefetch(sampled_crops(spec, encoder.info), batch_size * 2), encoder, batch_size)
    except VideoError as e:
        store.write_failed(spec, str(e))
        raise
    if len(pts) == 0 and Sampling.parse(spec.sampling).mode == "fps":
        err = VideoError(f"{spec.path}: no frames could be decoded between {spec.start:.0f}s and {spec.end:.0f}s (truncated or corrupt?)")
        store.write_failed(spec, str(err))
        raise err
    return store.write_shard(spec, pts, emb, extra={"seconds": round(time.perf_counter() - t0, 4)})


# -- stage 4: run the plan -------------------------------------------------------------------
class Backend(Protocol):
    name: str

    def run(self, plan: IngestPlan, store: IndexStore, report: IngestReport, progress: Callable[[ChunkSpec, dict | None], None]) -> None: ...


class LocalBackend:
    """In-process embedding: the embedded default, no server needed."""

    name = "local"

    def __init__(self, encoder, batch_size: int = 32):
        self.encoder = encoder
        self.batch_size = batch_size

    def run(self, plan: IngestPlan, store: IndexStore, report: IngestReport, progress) -> None:
        report.providers = self.encoder.providers("image") if plan.todo else []
        for spec in plan.todo:
            try:
                marker = embed_chunk(spec, self.encoder, store, self.batch_size)
            except UserError as e:
                report.chunks_failed += 1
                report.failures.append(Failure(spec.path, str(e), spec.start, spec.end))
                progress(spec, None)
                continue
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # an unexpected bug must not stop the batch: record it and go on
                log.debug("chunk %s failed", spec.chunk_id, exc_info=True)
                msg = f"{spec.path}: {one_line(e)}"
                store.write_failed(spec, msg)
                report.chunks_failed += 1
                report.failures.append(Failure(spec.path, msg, spec.start, spec.end))
                progress(spec, None)
                continue
            report.chunks_done += 1
            report.frames += int(marker.get("frames", 0))
            report.seconds_indexed += spec.end - spec.start
            progress(spec, marker)


def finish(store: IndexStore, plan: IngestPlan, report: IngestReport, complete: bool = True) -> None:
    """Refresh the catalog from the shards and settle each file's status.

    Chunks of these videos done earlier with other settings (sampling, chunk length) are
    removed only once the new plan has completely run (``complete``), so an interrupted
    re-index never leaves a video with fewer frames than before.
    """
    remove_stale = complete and not report.pending and bool(plan.stale)
    if remove_stale:
        for rec in plan.stale:
            store.remove_chunk(ChunkSpec.from_dict(rec))
    with store.catalog() as cat:
        if remove_stale:
            cat.con.executemany("DELETE FROM chunks WHERE chunk_id = ?", [[r["chunk_id"]] for r in plan.stale])
        cat.sync()
        for video_id, path in plan.videos.items():
            status = cat.con.execute(
                """SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'failed'),
                          count(*) FILTER (WHERE status = 'pending'), any_value(error) FILTER (WHERE status = 'failed')
                   FROM chunks WHERE video_id = ? AND model_id = ?""",
                [video_id, report.model_id],
            ).fetchone()
            done, failed, pending, err = status
            state = "pending" if pending else "indexed" if not failed else "partial" if done else "failed"
            cat.con.execute("UPDATE files SET status = ?, error = ?, updated_at = now() WHERE path = ?", [state, err, path])


def ingest(
    roots: Sequence[str | os.PathLike],
    store: IndexStore,
    model: ModelInfo,
    backend: Backend,
    options: IngestOptions | None = None,
    progress: Callable[[ChunkSpec, dict | None], None] | None = None,
    on_plan: Callable[[IngestPlan], None] | None = None,
) -> IngestReport:
    options = options or IngestOptions()
    t0 = time.perf_counter()
    plan = prepare(store, roots, model, options)
    report = IngestReport(
        files_seen=plan.files_seen, videos=len(plan.videos), chunks_skipped=plan.skipped,
        failures=list(plan.failures), model_id=model.model_id, backend=backend.name,
    )
    if on_plan:
        on_plan(plan)
    try:
        backend.run(plan, store, report, progress or (lambda spec, marker: None))
    finally:
        # Even on Ctrl-C: what was written is marked; make the catalog reflect it.
        complete = report.chunks_done + report.chunks_failed + report.pending >= len(plan.todo)
        finish(store, plan, report, complete=complete)
        report.wall_s = round(time.perf_counter() - t0, 3)
    return report
