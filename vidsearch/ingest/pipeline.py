"""Ingest orchestration: scan -> fingerprint -> probe -> plan -> embed chunks -> shards -> catalog.

Stages live in their own modules (``plan``, ``video``, ``preprocess``, ``encoder``, ``store``);
this module wires them. :func:`process_chunk` is the unit of work shared by the in-process
backend and the Celery workers (:func:`embed_chunk` for image chunks; with ``ocr`` the OCR
channel's chunks, :mod:`vidsearch.ocr.channel`, go through the same path).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from vidsearch.errors import UserError, VideoError, one_line
from vidsearch.models.contract import ModelInfo, sha256_file
from vidsearch.ocr.channel import OCR_CHANNEL, is_ocr_channel, plan_ocr
from vidsearch.core.plan import DEFAULT_CHUNK_S, ChunkSpec, Sampling, is_video_name, plan_video
from vidsearch.core.preprocess import center_crop, to_tensor
from vidsearch.index.store import IndexStore, read_marker
from vidsearch.media.video import VideoInfo, file_signature, iter_frames, probe

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestOptions:
    chunk_s: float = DEFAULT_CHUNK_S
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    batch_size: int = 32
    ocr: bool = False  # also read on-screen text (the OCR channel, see vidsearch.ocr.channel)


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
    channels: list[str] = dataclasses.field(default_factory=list)  # extra pseudo-models planned (OCR_CHANNEL)
    #: planned chunks done on disk that the catalog does not have as done (an ingest killed before
    #: it could record them, or workers that finished after their submitter left): synced at the end
    unsynced: list[ChunkSpec] = dataclasses.field(default_factory=list)
    _sharing: "collections.Counter | None" = dataclasses.field(default=None, repr=False, compare=False)

    def video_seconds(self, spec: ChunkSpec) -> float:
        """The seconds of video a chunk stands for in progress reports: its length, shared among the
        chunks to do over the same range (with --ocr an image chunk and its OCR chunk count half each)."""
        if self._sharing is None:
            self._sharing = collections.Counter((s.video_id, s.start, s.end) for s in self.todo)
        return (spec.end - spec.start) / max(1, self._sharing[(spec.video_id, spec.start, spec.end)])

    @property
    def seconds_todo(self) -> float:
        return sum(self.video_seconds(s) for s in self.todo)


@dataclasses.dataclass
class IngestReport:
    files_seen: int = 0
    videos: int = 0
    chunks_done: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    frames: int = 0
    ocr_frames: int = 0  # frames whose on-screen text was read
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
    todo: list[ChunkSpec] = []
    skipped = 0
    videos: dict[str, str] = {}
    durations: dict[str, float] = {}
    stale: list[dict] = []
    done_on_disk: list[ChunkSpec] = []
    channels = [OCR_CHANNEL] if options.ocr else []
    with store.catalog() as cat:
        cat.register_model(model.model_id, model.name, model.dim, model.to_json())
        for f in failures:
            cat.record_file(f.path, None, None, None, "failed", f.error)
        known = cat.known_files()
        with cat.batch() as tick:  # set-wise writes every few seconds, not a statement per file
            for path in paths:
                tick()
                if on_file:
                    on_file(path)
                spath = str(path)
                try:
                    video_id, info, size, mtime_ns = _identify(known, path)
                except (VideoError, OSError) as e:
                    msg = str(e) if isinstance(e, VideoError) else f"{spath}: cannot read file ({e.strerror or e})"
                    failures.append(Failure(spath, msg))
                    cat.record_file(spath, *_sig_or_none(path), None, "failed", msg)
                    continue
                cat.upsert_video(video_id, info.to_dict(), size)
                if video_id in videos:  # the same content at another path: index it once
                    cat.record_file(spath, size, mtime_ns, video_id, "duplicate", f"same content as {videos[video_id]}")
                    continue
                videos[video_id] = spath
                durations[video_id] = info.duration
                specs = plan_video(video_id, spath, info.duration, model.model_id, options.sampling, options.chunk_s)
                if options.ocr:
                    specs += plan_ocr(video_id, spath, info.duration, options.chunk_s)
                done, old = _done_and_stale(store, video_id, specs, [model.model_id, *channels])
                stale.extend(old)
                pending = [s for s in specs if s.chunk_id not in done]
                done_on_disk.extend(s for s in specs if s.chunk_id in done)
                skipped += len(specs) - len(pending)
                todo.extend(pending)
                cat.record_file(spath, size, mtime_ns, video_id, "pending" if pending else "indexed")
        cat.mark_pending(todo)
        in_catalog = cat.done_chunk_ids(videos) if done_on_disk else set()
    unsynced = [s for s in done_on_disk if s.chunk_id not in in_catalog]
    return IngestPlan(todo, skipped, videos, durations, failures, len(paths), stale, channels, unsynced)


def _identify(known: dict[str, tuple], path: Path) -> tuple[str, VideoInfo, int, int]:
    """(video_id, info, size, mtime_ns) of a file: from ``known`` (:meth:`Catalog.known_files`)
    while its size and mtime are unchanged, else probed and hashed (content-hash skipping).
    Raises :class:`VideoError` or :class:`OSError`."""
    size, mtime_ns = file_signature(path)
    row = known.get(str(path))
    if row and row[0] == size and row[1] == mtime_ns:
        video_id, duration, width, height, fps, codec, created = row[2:]
        return video_id, VideoInfo(str(path), duration, width, height, fps, codec, None, created), size, mtime_ns
    info = probe(path)  # first: a file that is no video fails here, before it is read whole
    return sha256_file(path), info, size, mtime_ns


def _done_and_stale(store: IndexStore, video_id: str, specs: Sequence[ChunkSpec], model_ids: Sequence[str]) -> tuple[set[str], list[dict]]:
    """(chunk ids of ``specs`` already done, the done markers of this video's chunks that are not
    planned now: done earlier with other settings). One directory listing per model."""
    done: set[str] = set()
    stale: list[dict] = []
    for mid in model_ids:
        mine = {s.name: s.chunk_id for s in specs if s.model_id == mid}
        names = {n[: -len(".done")] for n in store.video_files(mid, video_id) if n.endswith(".done") and not n.startswith(".")}
        done.update(mine[n] for n in names if n in mine)
        for name in sorted(names - mine.keys()):
            rec = read_marker(store.video_dir(mid, video_id) / f"{name}.done")
            if rec is not None:
                stale.append(rec)
    return done, stale


def _sig_or_none(path: Path) -> tuple[int | None, int | None]:
    try:
        return file_signature(path)
    except OSError:
        return None, None


# -- stage 3: decode + embed one chunk -------------------------------------------------------
class ImageEncoder(Protocol):
    info: ModelInfo

    def encode_images(self, pixels: np.ndarray) -> np.ndarray: ...


_DONE = object()


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _prefetch_worker(gen: Iterator, q: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in gen:
            if not _put(q, stop, item):
                return
        _put(q, stop, _DONE)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
        _put(q, stop, e)
    finally:
        if hasattr(gen, "close"):
            gen.close()  # in this thread, where it ran: closes the container


class _Prefetch:
    """Run ``gen`` in a thread from now on, so decoding overlaps inference; re-raises its exceptions
    in the consumer. At most ``maxsize`` items wait (memory stays flat). ``close()`` (or dropping
    the object) stops the thread."""

    def __init__(self, gen: Iterator, maxsize: int):
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()
        self.finished = False
        # the thread holds the queue and the event, not this object: dropping it stops the thread
        threading.Thread(target=_prefetch_worker, args=(gen, self.q, self.stop), daemon=True, name="vidsearch-decode").start()

    def __iter__(self) -> "_Prefetch":
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        item = self.q.get()
        if item is _DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.finished = True

    __del__ = close


def _prefetch(gen: Iterator, maxsize: int) -> _Prefetch:
    return _Prefetch(gen, maxsize)


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


def start_decoding(spec: ChunkSpec, info: ModelInfo, batch_size: int = 32) -> _Prefetch:
    """Start decoding a chunk's sampled frames in a thread now (at most two batches wait)."""
    return _prefetch(sampled_crops(spec, info), batch_size * 2)


def embed_chunk(
    spec: ChunkSpec, encoder: ImageEncoder, store: IndexStore, batch_size: int = 32, frames: _Prefetch | None = None
) -> dict:
    """Decode, embed and store one chunk; returns its done marker. Skips a chunk already done.

    ``frames``: the chunk's decoding, already started with :func:`start_decoding` (so that it
    overlapped the previous chunk); closed here in any case.
    Raises :class:`VideoError` for a chunk that yields no frame where frames were expected
    (a truncated file), after recording it as failed.
    """
    try:
        done = store.done_marker(spec)
        if done is not None:
            return {**done, "skipped": True}
        if encoder.info.model_id != spec.model_id:
            raise UserError(f"chunk was planned for model {spec.model_id} but this worker runs {encoder.info.model_id}")
        t0 = time.perf_counter()
        frames = frames or start_decoding(spec, encoder.info, batch_size)
        try:
            pts, emb = embed_frames(frames, encoder, batch_size)
        except VideoError as e:
            store.write_failed(spec, str(e))
            raise
    finally:
        if frames is not None:
            frames.close()
    if len(pts) == 0 and Sampling.parse(spec.sampling).mode == "fps":
        err = VideoError(f"{spec.path}: no frames could be decoded between {spec.start:.0f}s and {spec.end:.0f}s (truncated or corrupt?)")
        store.write_failed(spec, str(err))
        raise err
    return store.write_shard(spec, pts, emb, extra={"seconds": round(time.perf_counter() - t0, 4)})


def process_chunk(spec: ChunkSpec, encoder: ImageEncoder | None, store: IndexStore, batch_size: int = 32) -> dict:
    """The unit of work of every backend: an OCR chunk is read by :func:`vidsearch.ocr.channel.ocr_chunk`
    (one OCR engine and sentence embedder per process), any other is embedded by :func:`embed_chunk`."""
    if is_ocr_channel(spec.model_id):
        from vidsearch.ocr.channel import ocr_chunk

        return ocr_chunk(spec, store)
    return embed_chunk(spec, encoder, store, batch_size)


def count_chunk(report: "IngestReport", spec: ChunkSpec, marker: dict) -> None:
    """Add a finished chunk to the report (OCR frames are counted apart from embedded frames)."""
    report.chunks_done += 1
    if is_ocr_channel(spec.model_id):
        report.ocr_frames += int(marker.get("frames", 0))
    else:
        report.frames += int(marker.get("frames", 0))
        report.seconds_indexed += spec.end - spec.start


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
        ahead: tuple[ChunkSpec, _Prefetch] | None = None
        try:
            for i, spec in enumerate(plan.todo):
                frames = ahead[1] if ahead and ahead[0] is spec else None
                # start decoding the next chunk now: it overlaps this chunk's last batches (bounded queue)
                nxt = plan.todo[i + 1] if i + 1 < len(plan.todo) else None
                ahead = (nxt, start_decoding(nxt, self.encoder.info, self.batch_size)) if self._prefetchable(nxt, store) else None
                self._run_one(spec, frames, store, report, progress)
        finally:
            if ahead:
                ahead[1].close()

    def _prefetchable(self, spec: ChunkSpec | None, store: IndexStore) -> bool:
        return (spec is not None and not is_ocr_channel(spec.model_id) and spec.model_id == self.encoder.info.model_id
                and not store.is_done(spec))

    def _run_one(self, spec: ChunkSpec, frames: _Prefetch | None, store: IndexStore, report: IngestReport, progress) -> None:
        try:
            if frames is not None:
                marker = embed_chunk(spec, self.encoder, store, self.batch_size, frames=frames)
            else:
                marker = process_chunk(spec, self.encoder, store, self.batch_size)
        except UserError as e:
            report.chunks_failed += 1
            report.failures.append(Failure(spec.path, str(e), spec.start, spec.end))
            progress(spec, None)
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # an unexpected bug must not stop the batch: record it and go on
            log.debug("chunk %s failed", spec.chunk_id, exc_info=True)
            msg = f"{spec.path}: {one_line(e)}"
            store.write_failed(spec, msg)
            report.chunks_failed += 1
            report.failures.append(Failure(spec.path, msg, spec.start, spec.end))
            progress(spec, None)
            return
        count_chunk(report, spec, marker)
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
        cat.sync([*plan.todo, *plan.unsynced])  # the markers this run (or a killed one) wrote, not the whole index
        cat.settle_files(plan.videos, [report.model_id, *plan.channels])
    if complete and report.model_id:
        # bring the query-side copies up to date now (only what changed) so the next query does not pay
        from vidsearch.ocr import textcache
        from vidsearch.index.matrix import refresh as refresh_matrix

        try:
            refresh_matrix(store, report.model_id)
            for channel in plan.channels:
                textcache.refresh(store, channel)
        except Exception as e:  # noqa: BLE001 - the query rebuilds them; the ingest itself succeeded
            log.warning("query-side copies not updated (%s); the next query will update them", one_line(e))


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
