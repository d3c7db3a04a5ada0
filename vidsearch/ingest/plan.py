"""Ingest stages 1 and 2: scan for video files, identify them, and plan the chunks still to do.

A file is identified by its content hash (skipped while its size and mtime are unchanged); each
active channel plans its chunks of the video; chunks whose ``.done`` marker exists are skipped.
Files, videos and pending chunks are recorded in the catalog as they are found.
"""
from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

from vidsearch.core.plan import DEFAULT_CHUNK_S, ChunkSpec, Sampling, is_video_name
from vidsearch.errors import VideoError
from vidsearch.index.catalog import Catalog
from vidsearch.index.channel import Channel
from vidsearch.index.shards import IndexStore, is_done_marker, read_marker
from vidsearch.ingest import channels
from vidsearch.media.video import VideoInfo, file_signature, probe, timestamp_restart
from vidsearch.models.contract import ModelInfo, sha256_file


@dataclasses.dataclass
class IngestOptions:
    chunk_s: float = DEFAULT_CHUNK_S
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    batch_size: int = 32
    #: channels to run besides the image embedding, by name (``("ocr",)``: see vidsearch.ingest.channels)
    channels: tuple[str, ...] = ()
    #: motion gating of the channels that gate (the image embedding): "auto" or "off" (docs/motion.md)
    motion: str = "auto"


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
    model_ids: list[str] = dataclasses.field(default_factory=list)  # of every channel planned, the image model first
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
    named = []
    for path in sorted(set(found)):
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # bytes of another system's encoding: no catalog or Parquet column holds it
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            failures.append(Failure(shown, f"{shown}: its name is not valid UTF-8 (another system's encoding); "
                                           f"rename it, e.g. `convmv -f latin1 -t utf-8 --notest FILE`, and ingest again"))
            continue
        named.append(path)
    return named, failures


# -- stage 2: fingerprint + probe + plan -----------------------------------------------------
def prepare(
    store: IndexStore,
    roots: Sequence[str | os.PathLike],
    model: ModelInfo,
    options: IngestOptions,
    on_file: Callable[[Path], None] | None = None,
) -> IngestPlan:
    """Everything that must happen before the chunks run; records failures and videos in the catalog."""
    paths, failures = scan(roots, exclude=[store.root])
    active = channels.active(model, options.channels)
    plan = IngestPlan([], 0, {}, {}, failures, len(paths), [], [mid for _, mid in active])
    done_on_disk: list[ChunkSpec] = []
    with Catalog(store) as cat:
        cat.register_model(model.model_id, model.name, model.dim, model.to_json())
        for f in failures:
            cat.record_file(f.path, None, None, None, "failed", f.error)
        known = cat.known_files()
        aside = store.detached_videos()  # content set aside when its file was replaced (usually none)
        with cat.batch() as tick:  # set-wise writes every few seconds, not a statement per file
            for path in paths:
                tick()
                if on_file:
                    on_file(path)
                done_on_disk += _plan_file(store, cat, known, path, plan, active, options, aside)
        cat.mark_pending(plan.todo)
        in_catalog = cat.done_chunk_ids(plan.videos) if done_on_disk else set()
    plan.unsynced = [s for s in done_on_disk if s.chunk_id not in in_catalog]
    return plan


def _plan_file(store: IndexStore, cat: Catalog, known: dict[str, tuple], path: Path, plan: IngestPlan,
               active: list[tuple[Channel, str]], options: IngestOptions, aside: dict[str, int]) -> list[ChunkSpec]:
    """Identify one file and add its chunks to ``plan``; returns its planned chunks already done."""
    spath = str(path)
    try:
        video_id, info, size, mtime_ns = _identify(known, path)
    except (VideoError, OSError) as e:
        msg = str(e) if isinstance(e, VideoError) else f"{spath}: cannot read file ({e.strerror or e})"
        plan.failures.append(Failure(spath, msg))
        before = known.get(spath)
        if before:  # a read error is no proof the content changed: the path keeps its last content (and is identified again next time)
            cat.record_file(spath, None, None, before[2], "failed", msg)
        else:
            cat.record_file(spath, *_sig_or_none(path), None, "failed", msg)
        return []
    cat.upsert_video(video_id, info.to_dict(), size)
    if video_id in aside:  # content set aside when its file was replaced, found again: not embedded again
        store.restore_video(video_id)
    if video_id in plan.videos:  # the same content at another path: index it once
        cat.record_file(spath, size, mtime_ns, video_id, "duplicate", f"same content as {plan.videos[video_id]}")
        return []
    plan.videos[video_id] = spath
    plan.durations[video_id] = info.duration
    specs = [dataclasses.replace(s, motion=options.motion) if getattr(channel, "motion_gated", False) else s
             for channel, mid in active
             for s in channel.plan(video_id, spath, info.duration, mid, options.sampling, options.chunk_s)]
    specs = [dataclasses.replace(s, rotation=info.rotation, size=size) for s in specs]
    done, old = _done_and_stale(store, video_id, specs, [mid for _, mid in active])
    plan.stale.extend(old)
    pending = [s for s in specs if s.chunk_id not in done]
    plan.skipped += len(specs) - len(pending)
    plan.todo.extend(pending)
    cat.record_file(spath, size, mtime_ns, video_id, "pending" if pending else "indexed")
    return [s for s in specs if s.chunk_id in done]


def _identify(known: dict[str, tuple], path: Path) -> tuple[str, VideoInfo, int, int]:
    """(video_id, info, size, mtime_ns) of a file: from ``known`` (:meth:`Catalog.known_files`)
    while its size and mtime are unchanged, else probed and hashed (content-hash skipping). A
    known file probed by a version that did not record its display turn is probed again (not
    hashed). Raises :class:`VideoError` or :class:`OSError`."""
    size, mtime_ns = file_signature(path)
    row = known.get(str(path))
    if row and row[0] == size and row[1] == mtime_ns:
        video_id, duration, width, height, fps, codec, created, rotation = row[2:]
        if rotation is None:
            return video_id, probe(path), size, mtime_ns
        return video_id, VideoInfo(str(path), duration, width, height, fps, codec, None, created, rotation), size, mtime_ns
    info = probe(path)  # first: a file that is no video fails here, before it is read whole
    restart = timestamp_restart(path)
    if restart is not None:
        raise VideoError(
            f"{path}: its timestamps start again after {restart:.1f}s (recordings joined into one file, or a recorder "
            f"restarted), so a time in it names two moments; remux it with `ffmpeg -i {path.name} -c copy "
            f"{path.stem}.mkv` (continuous times, no re-encoding) and index that")
    return sha256_file(path), info, size, mtime_ns


def _done_and_stale(store: IndexStore, video_id: str, specs: Sequence[ChunkSpec], model_ids: Sequence[str]) -> tuple[set[str], list[dict]]:
    """(chunk ids of ``specs`` already done, the done markers of this video's chunks that are not
    planned now: done earlier with other settings). One directory listing per model, which also
    removes the temp files writers killed mid-write left there. For a turned video the markers
    are read too (:meth:`IndexStore.done_marker`): a chunk embedded on its side is redone, under
    the same shard name (replaced, not added)."""
    done: set[str] = set()
    stale: list[dict] = []
    for mid in model_ids:
        mine = {s.name: s for s in specs if s.model_id == mid}
        files = store.video_files(mid, video_id)
        store.sweep_temps(mid, video_id, files)  # what writers killed mid-write left
        names = {n[: -len(".done")] for n in files if is_done_marker(n)}
        done.update(mine[n].chunk_id for n in names if n in mine and (not mine[n].rotation or store.done_marker(mine[n])))
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
