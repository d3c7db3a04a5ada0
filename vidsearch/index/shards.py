"""The shard side of an index directory: paths, Arrow schemas, atomic shard and marker writing.

Index directory layout::

    catalog.duckdb                               DuckDB catalog (files, videos, chunks, frames views)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.parquet   one shard per chunk: the embeddings
    shards/<model>/<vid[:2]>/<vid>/<chunk>.done      marker, written after the shard (JSON)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.failed    why the chunk failed (JSON), if it did
    shards/<model>/<vid[:2]>/<vid>/<chunk>.parquet.damaged  a shard `status --verify` found damaged
    matrix/<model>/                              query-side copies (vidsearch.index.matrix, vidsearch.ocr.textcache)
    detached/<model>/<vid>/                      a video's chunks set aside: no file holds its content any more

A shard is written to a temporary name and renamed into place; only then is its ``.done``
marker written. A chunk is done exactly when its marker exists, so an interrupted ingest
loses nothing that was marked, and a re-run (or a redelivered Celery task) overwrites the
same shard name instead of adding rows. The marker records the shard's size, row count and
SHA-256, so a reader can tell a damaged shard (:func:`shard_problem`). The shards are the source of truth; the catalog
(:mod:`vidsearch.index.catalog`) is refreshed from them and can always be rebuilt.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from vidsearch.core.plan import ChunkSpec

CATALOG = "catalog.duckdb"
SHARDS = "shards"
DETACHED = "detached"  # detached/<model>/<video id>/: chunks of content no file holds any more
ROW_GROUP = 128 * 1024
SCHEMA_VERSION = 1


def model_slug(model_id: str) -> str:
    """A model id as a directory / SQL identifier suffix: ``clip-vit-b-32@ab12`` -> ``clip_vit_b_32_ab12``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_").lower()


def shard_schema(*fields):
    """A shard's schema: the key columns every shard starts with (video, path, chunk, time,
    model), then ``fields``."""
    import pyarrow as pa

    key = [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("chunk_id", pa.string(), nullable=False),
        pa.field("pts", pa.float64(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
    ]
    return pa.schema(key + list(fields), metadata={b"vidsearch.schema": str(SCHEMA_VERSION).encode()})


def frames_schema(dim: int | None, regions: bool = False, source: bool = False):
    """The image channel's shard schema (``dim`` None: any width, as the catalog's empty ``frames`` view).

    ``regions``: with a ``region`` (0: the whole frame) and a ``box`` column (x0, y0, x1, y1 as
    fractions of the frame), as written by ``ingest --regions``; a shard without them is all region 0.
    ``source``: with a ``source_pts`` column, the time of the frame whose embedding the row carries
    (motion gating reuses embeddings: docs/motion.md); a shard without it has ``source_pts = pts``.
    """
    import pyarrow as pa

    vector = pa.list_(pa.float32()) if dim is None else pa.list_(pa.float32(), dim)
    fields = [pa.field("embedding", vector, nullable=False)]
    if regions:
        fields += [pa.field("region", pa.int32(), nullable=False), pa.field("box", pa.list_(pa.float32(), 4), nullable=False)]
    if source:
        fields += [pa.field("source_pts", pa.float64(), nullable=False)]
    return shard_schema(*fields)


def source_pts(table) -> np.ndarray:
    """The ``source_pts`` of an image shard's rows (read as an Arrow table): ``pts`` where the
    shard predates the column."""
    name = "source_pts" if "source_pts" in table.column_names else "pts"
    return table.column(name).to_numpy()


#: a temp file whose writer cannot be checked (another machine, or a name of an older version) is
#: left alone this long after its last write: a shard or marker is written in seconds
TEMP_MAX_AGE_S = 3600.0
_TEMP_NAME = re.compile(r"\.(\d+)@([^@/]+)\.[0-9a-f]{32}\.tmp$")


def _writer_tag() -> str:
    """``<host>-<pid namespace>``: where a process id names the same process as in this one."""
    import socket

    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname() or "host")
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        ns = "0"
    return f"{host}-{ns}"


def unique_name() -> str:
    """A temp-name part no other writer uses, even on another machine sharing the directory:
    ``<pid>@<host>-<pid namespace>.<uuid>``, so a leftover of a killed writer can be told from a
    write in progress (:func:`leftover_temp`)."""
    import uuid

    return f"{os.getpid()}@{_writer_tag()}.{uuid.uuid4().hex}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # someone else's process: alive
    try:  # killed but not yet reaped by its parent: gone all the same
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def leftover_temp(path: Path, now: float | None = None) -> bool:
    """Is the temp file ``path`` left behind by a writer that died (SIGKILL, a lost machine)?
    Yes when its writer was a process of this machine (and pid namespace) that is gone, or, when
    that cannot be checked, when it was last written over :data:`TEMP_MAX_AGE_S` ago."""
    m = _TEMP_NAME.search(path.name)
    if m and m.group(2) == _writer_tag():
        return int(m.group(1)) != os.getpid() and _process_gone(int(m.group(1)))
    try:
        return (time.time() if now is None else now) - path.stat().st_mtime > TEMP_MAX_AGE_S
    except FileNotFoundError:
        return False  # renamed into place or removed meanwhile


def remove_leftover_temps(d: Path, names: Iterable[str], prefix: str = ".") -> int:
    """Remove the temp files among ``names`` (of directory ``d``, starting with ``prefix``) that
    :func:`leftover_temp` says were left behind; returns how many went."""
    gone = 0
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp") and leftover_temp(d / name):
            with contextlib.suppress(FileNotFoundError):
                (d / name).unlink()
                gone += 1
    return gone


@contextlib.contextmanager
def replacing(final: Path, sweep: bool = True) -> Iterator[Path]:
    """A temp path beside ``final`` for the block to write (one per writer: deliveries may overlap),
    renamed onto ``final`` when the block ends; removed when it fails (Ctrl-C, a full disk). Then
    the temp files earlier writers of ``final`` left when they were killed go (:func:`leftover_temp`;
    ``sweep`` False: the caller sweeps the directory once, after writing many files into it)."""
    tmp = final.with_name(f".{final.name}.{unique_name()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sweep:  # one directory listing: a chunk's or a video's directory, small
        prefix = f".{final.name}."
        remove_leftover_temps(final.parent, (p.name for p in final.parent.glob(f"{glob.escape(prefix)}*.tmp")), prefix)


def write_json_atomic(path: Path, data: Any, **dump_kw: Any) -> None:
    """Write ``data`` as JSON to ``path`` (temp file + fsync + rename, :func:`replacing`);
    ``dump_kw`` go to :func:`json.dump` (default ``indent=1``)."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, **{"indent": 1, **dump_kw})
        f.flush()
        os.fsync(f.fileno())


def is_done_marker(name: str) -> bool:
    """Is the file ``name`` a chunk's done marker (not a writer's hidden temp file)?"""
    return name.endswith(".done") and not name.startswith(".")


def read_marker(path: str | os.PathLike) -> dict | None:
    """A ``.done`` / ``.failed`` marker as a dict; None when it is missing or unreadable (markers
    are written atomically: an unreadable one was damaged on disk)."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def sha256_bytes(data) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def shard_problem(path: str | os.PathLike, marker: dict, data=None, full: bool = False) -> str | None:
    """Why the shard at ``path`` does not match what its ``.done`` marker recorded; None when it does.

    Always checked: the file is there, has the recorded size, and its Parquet footer the recorded
    row count. The SHA-256 too when the file's bytes are given (``data``: a reader has them
    anyway) or ``full``. A marker written before these were recorded is checked for what it has.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        size = path.stat().st_size
        if marker.get("bytes") is not None and size != int(marker["bytes"]):
            return f"{size} bytes, the marker says {marker['bytes']}"
        if data is None and full:
            data = path.read_bytes()
        if data is not None and marker.get("sha256") and sha256_bytes(data) != marker["sha256"]:
            return "its SHA-256 differs from the one recorded when it was written"
        meta = pq.ParquetFile(pa.BufferReader(data) if data is not None else str(path)).metadata
    except FileNotFoundError:
        return "the shard file is missing"
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        return f"unreadable ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
    if marker.get("rows") is not None and meta.num_rows != int(marker["rows"]):
        return f"{meta.num_rows} rows, the marker says {marker['rows']}"
    return None


def _region_arrays(regions: tuple[np.ndarray, np.ndarray] | None, n: int) -> list:
    """The ``region`` and ``box`` columns of a shard's rows (none without regions)."""
    import pyarrow as pa

    if regions is None:
        return []
    region, box = np.asarray(regions[0], np.int32), np.asarray(regions[1], np.float32).reshape(-1, 4)
    if len(region) != n or len(box) != n:
        raise ValueError("regions and embeddings differ in length")
    return [pa.array(region, pa.int32()), pa.FixedSizeListArray.from_arrays(pa.array(box.reshape(-1), pa.float32()), 4)]


class IndexStore:
    """The shard side of an index directory (safe to use from many processes and machines)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        self.shards_root = self.root / SHARDS
        self.detached_root = self.root / DETACHED
        self.catalog_path = self.root / CATALOG

    # -- paths -----------------------------------------------------------------------------
    def video_dir(self, model_id: str, video_id: str) -> Path:
        return self.shards_root / model_slug(model_id) / video_id[:2] / video_id

    def chunk_dir(self, spec: ChunkSpec) -> Path:
        return self.video_dir(spec.model_id, spec.video_id)

    def shard_path(self, spec: ChunkSpec) -> Path:
        return self.chunk_dir(spec) / f"{spec.name}.parquet"

    def marker_path(self, spec: ChunkSpec) -> Path:
        return self.chunk_dir(spec) / f"{spec.name}.done"

    def failed_path(self, spec: ChunkSpec) -> Path:
        return self.chunk_dir(spec) / f"{spec.name}.failed"

    def exists(self) -> bool:
        return self.catalog_path.exists() or self.shards_root.exists()

    # -- writing ---------------------------------------------------------------------------
    def is_done(self, spec: ChunkSpec) -> bool:
        return self.marker_path(spec).exists()

    def write_shard(self, spec: ChunkSpec, pts: np.ndarray, embeddings: np.ndarray, extra: dict | None = None,
                    regions: tuple[np.ndarray, np.ndarray] | None = None, source: np.ndarray | None = None) -> dict:
        """Write the chunk's frame embeddings (temp file + rename), then its done marker. Idempotent.

        ``regions``: (region [N] int, box [N, 4]) of each row, for a chunk ingested with regions.
        ``source``: each row's ``source_pts`` (the frame whose embedding it carries); None: no column."""
        import pyarrow as pa

        pts = np.asarray(pts, dtype=np.float64)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, dim = (emb.shape[0], emb.shape[1]) if emb.ndim == 2 else (0, 0)
        if len(pts) != n or (source is not None and len(source) != n):
            raise ValueError("pts, source pts and embeddings differ in length")
        tail = [] if source is None else [pa.array(np.asarray(source, np.float64), pa.float64())]
        table = pa.Table.from_arrays(
            [
                pa.array([spec.video_id] * n, pa.string()),
                pa.array([spec.path] * n, pa.string()),
                pa.array([spec.chunk_id] * n, pa.string()),
                pa.array(pts, pa.float64()),
                pa.array([spec.model_id] * n, pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim),
                *_region_arrays(regions, n),
                *tail,
            ],
            schema=frames_schema(dim, regions is not None, source is not None),
        )
        return self.write_table_shard(spec, table, extra={"frames": n, "dim": dim, **(extra or {})})

    def write_table_shard(self, spec: ChunkSpec, table, extra: dict | None = None) -> dict:
        """Write any Arrow table as the chunk's shard (temp file + fsync + rename), then its done
        marker (the spec, the shard's name and ``extra``). Vector columns (fixed-size lists) are
        stored uncompressed, the rest with zstd. Idempotent: a re-run replaces the same file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        d = self.chunk_dir(spec)
        d.mkdir(parents=True, exist_ok=True)
        compression = {
            f.name: "none" if pa.types.is_fixed_size_list(f.type) else "zstd" for f in table.schema
        }
        final = self.shard_path(spec)
        with replacing(final) as tmp:  # Ctrl-C or a full disk mid-write: no temp file left behind
            pq.write_table(table, tmp, use_dictionary=False, row_group_size=ROW_GROUP, compression=compression)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
                data = f.read()  # just written: from the page cache
        marker = {
            "chunk_id": spec.chunk_id, **spec.to_dict(), "shard": final.name, "written_at": time.time(),
            **(extra or {}), "rows": table.num_rows, "bytes": len(data), "sha256": sha256_bytes(data),
            "upright": True,  # frames turned as the container shows them (vidsearch.media.video.upright)
        }
        self.failed_path(spec).unlink(missing_ok=True)
        d.joinpath(f"{final.name}.damaged").unlink(missing_ok=True)
        write_json_atomic(self.marker_path(spec), marker)
        return marker

    def write_failed(self, spec: ChunkSpec, error: str) -> dict:
        d = self.chunk_dir(spec)
        d.mkdir(parents=True, exist_ok=True)
        rec = {"chunk_id": spec.chunk_id, **spec.to_dict(), "error": error, "failed_at": time.time()}
        write_json_atomic(self.failed_path(spec), rec)
        return rec

    def quarantine(self, rec: dict, reason: str) -> str:
        """Mark a done chunk whose shard is damaged for redoing: the shard is renamed
        ``<shard>.damaged`` (out of every reader's way), a ``.failed`` marker says why, the ``.done``
        marker goes; the next ingest redoes the chunk. Returns the one-line error recorded."""
        spec = ChunkSpec.from_dict(rec)
        shard = Path(rec["_dir"]) / rec.get("shard", self.shard_path(spec).name)
        with contextlib.suppress(FileNotFoundError):
            os.replace(shard, shard.with_name(f"{shard.name}.damaged"))
        error = f"{shard}: damaged shard ({reason}); the next ingest re-indexes this chunk"
        self.write_failed(spec, error)
        self.marker_path(spec).unlink(missing_ok=True)
        return error

    def verify(self, full: bool = True) -> Iterator[tuple[dict, str | None]]:
        """``(done marker, problem or None)`` of every done chunk, its shard checked in full (size,
        rows, SHA-256: see :func:`shard_problem`); ``full`` False: size and footer only (quick)."""
        for kind, rec in self.iter_records():
            if kind == "done":
                yield rec, shard_problem(self.done_shard(rec), rec, full=full)

    @staticmethod
    def done_shard(rec: dict) -> Path:
        """The shard file a done marker (as :meth:`iter_records` reads it) names."""
        return Path(rec["_dir"]) / rec.get("shard", "")

    def video_chunks(self, video_id: str) -> dict[str, int]:
        """``model or channel id -> done chunks`` of ``video_id`` (one directory read per model)."""
        out: dict[str, int] = {}
        for slug in self.model_slugs():
            names = [n for n in self.video_files(slug, video_id) if is_done_marker(n)]
            if names:
                rec = next((r for r in (read_marker(self.video_dir(slug, video_id) / n) for n in names) if r), {})
                out[rec.get("model_id", slug)] = len(names)
        return out

    def remove_video(self, video_id: str) -> dict[str, int]:
        """Remove every chunk of ``video_id``, of every model and channel: markers first (a chunk
        stops being done before its shard goes), then the rest of its directories; a copy set
        aside (:meth:`detach_video`) goes too. Returns what :meth:`video_chunks` said before."""
        chunks = self.video_chunks(video_id)
        for slug in self.model_slugs():
            d = self.video_dir(slug, video_id)
            try:
                entries = sorted(d.iterdir(), key=lambda p: not p.name.endswith((".done", ".failed")))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for p in entries:
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                d.rmdir()
        self.purge_detached([video_id])
        return chunks

    def detach_video(self, video_id: str) -> dict[str, int]:
        """Set a video's chunks aside: each model's directory of it moves to
        ``detached/<model>/<video id>`` (one rename), out of every reader's way, until
        :meth:`restore_video` brings it back. Returns what :meth:`video_chunks` said before."""
        chunks = self.video_chunks(video_id)
        for slug in self.model_slugs():
            src = self.video_dir(slug, video_id)
            if not src.is_dir():
                continue
            dst = self.detached_root / slug / video_id
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():  # set aside before, and indexed again since: the newer copy wins
                shutil.rmtree(dst)
            os.replace(src, dst)
        return chunks

    def restore_video(self, video_id: str) -> int:
        """Bring back what :meth:`detach_video` set aside of ``video_id`` (its content is at a path
        again); a model that has the video's chunks in place keeps those. Returns the done chunks
        that came back."""
        try:
            slugs = [p.name for p in self.detached_root.iterdir()]
        except FileNotFoundError:
            return 0
        back = 0
        for slug in slugs:
            src = self.detached_root / slug / video_id
            if not src.is_dir():
                continue
            dst = self.video_dir(slug, video_id)
            if dst.exists():
                shutil.rmtree(src)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            back += sum(map(is_done_marker, os.listdir(src)))
            os.replace(src, dst)
        return back

    def detached_videos(self) -> dict[str, int]:
        """``video id -> done chunks`` set aside, over every model."""
        out: dict[str, int] = {}
        try:
            slugs = list(self.detached_root.iterdir())
        except FileNotFoundError:
            return out
        for slug in slugs:
            for d in slug.iterdir() if slug.is_dir() else ():
                out[d.name] = out.get(d.name, 0) + sum(map(is_done_marker, os.listdir(d)))
        return out

    def purge_detached(self, video_ids: Iterable[str] | None = None) -> None:
        """Delete what was set aside of these videos (None: of every video)."""
        if not self.detached_root.is_dir():
            return
        if video_ids is None:
            shutil.rmtree(self.detached_root, ignore_errors=True)
            return
        for slug in self.detached_root.iterdir():
            for video_id in video_ids:
                shutil.rmtree(slug / video_id, ignore_errors=True)

    def remove_chunk(self, spec: ChunkSpec) -> None:
        for p in (self.marker_path(spec), self.shard_path(spec), self.failed_path(spec)):
            p.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------
    def model_slugs(self) -> list[str]:
        if not self.shards_root.is_dir():
            return []
        return sorted(p.name for p in self.shards_root.iterdir() if p.is_dir())

    def iter_records(self, model_id: str | None = None) -> Iterator[tuple[str, dict]]:
        """``("done"|"failed", record)`` for every marker (optionally of one model)."""
        slugs = [model_slug(model_id)] if model_id else self.model_slugs()
        for slug in slugs:
            base = self.shards_root / slug
            if not base.is_dir():
                continue
            for prefix in os.scandir(base):
                if not prefix.is_dir():
                    continue
                for vid in os.scandir(prefix.path):
                    if not vid.is_dir():
                        continue
                    for entry in os.scandir(vid.path):
                        kind = "done" if entry.name.endswith(".done") else "failed" if entry.name.endswith(".failed") else None
                        if kind is None or entry.name.startswith("."):
                            continue
                        rec = read_marker(entry.path)
                        if rec is None:
                            continue
                        rec["_dir"] = vid.path
                        yield kind, rec

    def video_files(self, model_id: str, video_id: str) -> set[str]:
        """Names of the files in one video's shard directory for ``model_id`` (one directory read)."""
        try:
            return {e.name for e in os.scandir(self.video_dir(model_id, video_id))}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def sweep_temps(self, model_id: str, video_id: str, names: Iterable[str]) -> int:
        """Remove the temp files of killed writers among ``names`` (from :meth:`video_files`) of one
        video's shard directory; returns how many went (:func:`leftover_temp`)."""
        return remove_leftover_temps(self.video_dir(model_id, video_id), names)

    def read_record(self, spec: ChunkSpec) -> tuple[str, dict] | None:
        """``("done"|"failed", record)`` of one chunk from its marker (done wins); None while it has neither."""
        for kind, path in (("done", self.marker_path(spec)), ("failed", self.failed_path(spec))):
            rec = read_marker(path)
            if rec is not None:
                rec["_dir"] = str(path.parent)
                return kind, rec
        return None

    def done_marker(self, spec: ChunkSpec) -> dict | None:
        """The chunk's done marker, or None while it is not done. A chunk of a turned video
        (``spec.rotation``) whose marker does not say its frames were taken upright is not done."""
        marker = read_marker(self.marker_path(spec))
        if marker is not None and spec.rotation and not marker.get("upright"):
            return None
        return marker

    def done_shards(self, model_id: str) -> list[Path]:
        return sorted(self.done_shard(rec) for kind, rec in self.iter_records(model_id) if kind == "done")

    def done_shard_markers(self, model_id: str) -> list[tuple[Path, dict]]:
        """``(shard path, done marker)`` of every done chunk of ``model_id``, by path."""
        out = [(self.done_shard(rec), rec) for kind, rec in self.iter_records(model_id) if kind == "done"]
        return sorted(out, key=lambda pr: pr[0])

    def shard_glob(self, model_id_or_slug: str) -> str:
        """The glob of every shard of a model (or channel) id or its slug (a slug is its own slug)."""
        return str(self.shards_root / model_slug(model_id_or_slug) / "*" / "*" / "*.parquet")

    def has_shards(self, model_id_or_slug: str) -> bool:
        return any((self.shards_root / model_slug(model_id_or_slug)).glob("*/*/*.parquet"))
