"""The search-friendly copy of one model's embeddings: a memory-mapped matrix, rebuilt incrementally.

The Parquet shards stay the source of truth (and DuckDB reads them for SQL), but scanning a
million rows through DuckDB takes ~7x the memory-bandwidth bound. A query instead scores
a memory-mapped ``float16`` matrix that holds every done shard's rows::

    <index>/matrix/<model slug>/
        manifest.json              what the files below hold; written last (the commit point)
        emb-<gen>.f16              [rows, dim] float16, C order (``.f32`` with VIDSEARCH_MATRIX_DTYPE=float32)
        pts-<gen>.f64              [rows] frame times (seconds)
        codes-<gen>.i32            [rows] video code (index into manifest["videos"])
        regions-<gen>.i16          [rows] region code (index into manifest["boxes"]; 0: the whole frame)
        shards-<gen>-<rows>.json   which shards the rows came from: key -> [row0, n, marker mtime_ns, marker size, start, code]
        .lock                      one writer at a time (flock)
        coarse/                    the compressed first stage of a big index (:mod:`vidsearch.index.coarse`)
    <index>/matrix/catalog.json    the catalog facts a query needs (:mod:`vidsearch.index.meta`)

Every file is memory-mapped by a reader, so a query touches only the rows it scores. Besides
:func:`matmul` (every row, for retrospection and the plain query path), a query scans the
file in place with faiss (:mod:`vidsearch.index.flatscan`) or asks the coarse stage first.

**float16.** It halves the bytes a query streams and the memory it maps (1M x 512 frames:
1 GiB instead of 2). Rows are rounded to float16 (relative error <= 2^-11 per component, about
1e-5 on a cosine score) and products are accumulated in float32 (ONNX Runtime's Cast + MatMul
on blocks that stay in cache), so rankings match float32 up to ties closer than ~1e-4; the
tests compare both on the colour archive and ``ops/bench/query.py`` reports the top-50 overlap.
``VIDSEARCH_MATRIX_DTYPE=float32`` keeps exact float32 rows (the copy is rebuilt).

**Freshness.** Every shard directory (``shards/<model>/<vid[:2]>/<vid>/``) is one video. Writing
or removing a shard or marker renames into / unlinks from that directory, which changes its
mtime; the manifest records each directory's mtime, so a query stats the video directories
(hundreds, not tens of thousands of markers) and lists only those that changed. New ``.done``
markers are *appended* (rows go at the end; per-video row segments keep each video's frames in
time order without sorting at query time). A marker that changed or vanished (a re-ingest with
other settings, a removed video) triggers a *full rebuild* into a new generation of files. A
directory modified within ``RACY_NS`` of a scan is recorded as unknown and listed again next
time (mtimes have coarse granularity; this is git's "racy" rule).

**Damaged shards.** A shard whose size, row count or SHA-256 differs from what its marker
recorded (:func:`~vidsearch.index.shards.shard_problem`) is left out with one warning naming it;
the manifest's ``damaged`` (key -> frames) says so to every query (:attr:`MatrixRows.damaged`)
until ``vidsearch status --verify`` marks the chunk for re-indexing and an ingest redoes it.

**Atomicity.** Appends write past the manifest's row count (readers map exactly ``rows``),
fsync, write a new shard table, then replace ``manifest.json``; leftovers of a crashed append
are truncated by the next writer. A rebuild writes a new generation and removes the old files
after the manifest points at the new ones (a reader that mapped them keeps its inode).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from vidsearch.errors import first_line
from vidsearch.index import coarse, meta
from vidsearch.index.shards import IndexStore, is_done_marker, model_slug, read_marker, shard_problem, write_json_atomic
from vidsearch.settings import current

log = logging.getLogger(__name__)

MATRIX = "matrix"
FORMAT = 2  # 2: region codes (``ingest --regions``); a format 1 copy is rebuilt
MANIFEST = "manifest.json"
#: a directory modified this close to a scan is listed again next time (mtime granularity)
RACY_NS = 2_000_000_000
#: rows scored per ONNX Runtime call: the float32 copy of a block (4 MiB at dim 512) stays in cache
BLOCK_ROWS = 2048
#: rows buffered in memory while building (bounded memory however big the index)
WRITE_ROWS = 32768
_SUFFIX = {"float16": "f16", "float32": "f32"}


def wanted_dtype() -> str:
    d = current().matrix_dtype.strip().lower() or "float16"
    if d not in _SUFFIX:
        from vidsearch.errors import UserError

        raise UserError(f"VIDSEARCH_MATRIX_DTYPE={d!r} is not supported: use float16 (default) or float32")
    return d


# -- scoring ---------------------------------------------------------------------------------
#: ONNX graph ``s = MatMul(Cast<float>(E: float16 [n, d]), q: float32 [d, k])``, opset 13.
#: Serialised here so that a query does not import the ``onnx`` package (~0.1 s);
#: tests/test_matrix.py rebuilds it with onnx.helper and checks these bytes.
F16_MATMUL_ONNX = (
    b"\x08\x07\x12\x10vidsearch.matrix:\x80\x01\n\x19\n\x01E\x12\x03E32\"\x04Cast*\t\n\x02to\x18\x01\xa0"
    b"\x01\x02\n\x13\n\x03E32\n\x01q\x12\x01s\"\x06MatMul\x12\tf16matmulZ\x15\n\x01E\x12\x10\n\x0e\x08\n"
    b"\x12\n\n\x03\x12\x01n\n\x03\x12\x01dZ\x15\n\x01q\x12\x10\n\x0e\x08\x01\x12\n\n\x03\x12\x01d\n\x03"
    b"\x12\x01kb\x15\n\x01s\x12\x10\n\x0e\x08\x01\x12\n\n\x03\x12\x01n\n\x03\x12\x01kB\x04\n\x00\x10\r"
)
_session = None
_session_lock = threading.Lock()


def _f16_session():
    """The cached ONNX Runtime session of :data:`F16_MATMUL_ONNX` (None if it cannot be created)."""
    global _session
    with _session_lock:
        if _session is None:
            try:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                # one thread per run; matmul() runs blocks from several Python threads instead
                # (steadier than ONNX Runtime's pool for ~100 µs runs, and no spinning)
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                _session = ort.InferenceSession(F16_MATMUL_ONNX, sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - numpy below is correct, only slower
                log.warning("float16 scoring falls back to numpy (%s)", first_line(e))
                _session = False
        return _session or None


_executor = None


def _workers() -> int:
    threads = int(current().threads or 0)
    return max(1, min(threads or (os.cpu_count() or 1), 8))


def _pool():
    global _executor
    with _session_lock:
        if _executor is None:
            from concurrent.futures import ThreadPoolExecutor

            _executor = ThreadPoolExecutor(_workers(), thread_name_prefix="vidsearch-score")
        return _executor


def matmul(emb: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``emb @ query`` in float32 for a float32 or float16 (possibly memory-mapped) matrix ``emb`` [N, dim].

    ``query``: [dim] (returns [N]) or [dim, K] (returns [N, K], e.g. K label prompts at once).
    float16 rows are widened block by block (never a full float32 copy: memory stays at the
    mapped matrix) and accumulated in float32.
    """
    q = np.asarray(query, dtype=np.float32)
    vector = q.ndim == 1
    q = np.ascontiguousarray(q.reshape(len(q), -1))
    n = len(emb)
    if n == 0:
        out = np.zeros((0, q.shape[1]), np.float32)
    elif emb.dtype != np.float16:
        out = np.asarray(emb @ q.astype(emb.dtype, copy=False), dtype=np.float32)
    else:
        out = np.empty((n, q.shape[1]), np.float32)
        sess = _f16_session()
        if sess is not None:

            def part(lo_hi: tuple[int, int]) -> None:
                for i in range(lo_hi[0], lo_hi[1], BLOCK_ROWS):
                    j = min(i + BLOCK_ROWS, lo_hi[1])
                    out[i:j] = sess.run(None, {"E": emb[i:j], "q": q})[0]

            workers = _workers()
            blocks = -(-n // BLOCK_ROWS)
            if workers > 1 and blocks >= 2 * workers:
                per = -(-blocks // workers) * BLOCK_ROWS
                list(_pool().map(part, [(lo, min(lo + per, n)) for lo in range(0, n, per)]))
            else:
                part((0, n))
        else:
            buf = np.empty((min(n, BLOCK_ROWS), emb.shape[1]), np.float32)
            for i in range(0, n, BLOCK_ROWS):
                m = min(BLOCK_ROWS, n - i)
                np.copyto(buf[:m], emb[i : i + m])
                np.dot(buf[:m], q, out=out[i : i + m])
    return out[:, 0] if vector else out


def matvec(emb: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Scores of every row against one query vector: float32 [N]."""
    return matmul(emb, np.asarray(query).reshape(-1))


# -- the matrix cache ------------------------------------------------------------------------
def matrix_dir(store: IndexStore, model_id: str) -> Path:
    return store.root / MATRIX / model_slug(model_id)


def scan_video_dirs(base: Path) -> dict[str, int]:
    """``{"<vid[:2]>/<vid>": mtime_ns}`` of every video directory under one model's shards ``base``."""
    out: dict[str, int] = {}
    try:
        prefixes = list(os.scandir(base))
    except FileNotFoundError:
        return out
    for prefix in prefixes:
        if not prefix.is_dir() or prefix.name.startswith("."):
            continue
        try:
            vids = list(os.scandir(prefix.path))
        except FileNotFoundError:
            continue
        for vid in vids:
            if vid.name.startswith("."):
                continue
            try:
                st = vid.stat()
            except FileNotFoundError:
                continue
            if vid.is_dir():
                out[f"{prefix.name}/{vid.name}"] = st.st_mtime_ns
    return out


def record_dirs(dirs: dict[str, int], scan_start: int) -> dict[str, int | None]:
    """Directory mtimes as a cache records them: one modified within ``RACY_NS`` of the scan is
    recorded as unknown (None), so it is looked at again next time."""
    return {d: (None if mtime >= scan_start - RACY_NS else mtime) for d, mtime in dirs.items()}


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """One writer at a time for a cache directory (``flock`` on ``<directory>/.lock``)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; one writer is the caller's business
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class MatrixCache:
    """The matrix of one model in one index (see the module docstring)."""

    def __init__(self, store: IndexStore, model_id: str, dtype: str | None = None):
        self.store = store
        self.model_id = model_id
        self.dtype = dtype or wanted_dtype()
        self.dir = matrix_dir(store, model_id)
        self.base = store.shards_root / model_slug(model_id)
        #: what the last refresh did: "fresh", "append", "rebuild" or "settle"
        self.last_action: str | None = None
        self.last_appended = 0

    # -- file names ------------------------------------------------------------------------
    def _emb_path(self, gen: int, dtype: str) -> Path:
        return self.dir / f"emb-{gen}.{_SUFFIX[dtype]}"

    def _pts_path(self, gen: int) -> Path:
        return self.dir / f"pts-{gen}.f64"

    def _codes_path(self, gen: int) -> Path:
        return self.dir / f"codes-{gen}.i32"

    def _regions_path(self, gen: int) -> Path:
        return self.dir / f"regions-{gen}.i16"

    # -- reading ---------------------------------------------------------------------------
    def read_manifest(self) -> dict | None:
        try:
            m = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("model_id") != self.model_id:
            return None
        return m

    def scan_dirs(self) -> dict[str, int]:
        """``{"<vid[:2]>/<vid>": mtime_ns}`` of every video directory of this model's shards."""
        return scan_video_dirs(self.base)

    def is_fresh(self, manifest: dict | None, dirs: dict[str, int] | None = None) -> bool:
        if manifest is None or manifest.get("dtype") != self.dtype:
            return False
        dirs = self.scan_dirs() if dirs is None else dirs
        return manifest.get("dirs") == dirs  # a racy directory is recorded as null: never equal

    def _list_markers(self, rel_dir: str) -> dict[str, tuple[int, int]]:
        """``{"<dir>/<chunk name>": (mtime_ns, size)}`` of the ``.done`` markers in one video directory."""
        out = {}
        try:
            entries = list(os.scandir(self.base / rel_dir))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for e in entries:
            if is_done_marker(e.name):
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                out[f"{rel_dir}/{e.name[:-5]}"] = (st.st_mtime_ns, st.st_size)
        return out

    def open(self, refresh: bool = True) -> "MatrixRows":
        """The model's rows, ``emb`` memory-mapped (refreshed first); :func:`vidsearch.index.frames.load_frame_index`
        makes them a :class:`~vidsearch.index.frames.FrameIndex`."""
        for attempt in range(5):
            manifest = self.refresh() if refresh else self.read_manifest()
            if manifest is None:
                from vidsearch.errors import IndexUnusableError

                raise IndexUnusableError(f"no search matrix for {self.model_id} in {self.store.root}: run a query to build it")
            try:
                return self._mapped(manifest)
            except FileNotFoundError:  # a concurrent rebuild removed this generation: read the new manifest
                if attempt == 4:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def _mapped(self, m: dict) -> "MatrixRows":
        """Every file memory-mapped: a query touches only the rows it scores (a 30M-row index stays on disk)."""
        rows, dim, gen, dtype = int(m["rows"]), int(m["dim"]), int(m["gen"]), m["dtype"]
        videos = list(m["videos"])
        segments = np.asarray(m["segments"], dtype=np.int64).reshape(-1, 3)
        if rows == 0 or dim == 0:
            return MatrixRows([], np.zeros(0, np.int32), np.zeros(0), np.zeros((0, 0), np.float32), None, segments,
                              damaged=self._damaged(m))
        emb_path = self._emb_path(gen, dtype)
        boxes = [tuple(b) for b in m.get("boxes") or [FULL_BOX]]
        try:
            emb = np.memmap(emb_path, dtype=np.dtype(dtype), mode="r", shape=(rows, dim))
            pts = np.memmap(self._pts_path(gen), dtype=np.float64, mode="r", shape=(rows,))
            codes = np.memmap(self._codes_path(gen), dtype=np.int32, mode="r", shape=(rows,))
            region = np.fromfile(self._regions_path(gen), dtype=np.int16, count=rows) if len(boxes) > 1 else None
        except ValueError as e:  # numpy: "mmap length is greater than file size"
            raise FileNotFoundError(f"matrix files shorter than the manifest ({e})") from None
        if region is not None and len(region) != rows:
            raise FileNotFoundError("matrix files shorter than the manifest")
        return MatrixRows(videos, codes, pts, emb, None, segments, emb_path, gen, damaged=self._damaged(m),
                          region=region, boxes=boxes)

    def _damaged(self, m: dict) -> dict[str, int]:
        """The manifest's damaged shards as ``{shard path: frames left out}``."""
        return {str(self.base / f"{key}.parquet"): int(n) for key, n in (m.get("damaged") or {}).items()}

    # -- writing ---------------------------------------------------------------------------
    def refresh(self) -> dict:
        """Bring the matrix up to date with the done shards; returns the manifest."""
        manifest = self.read_manifest()
        if self.is_fresh(manifest):
            self.last_action = "fresh"
            return manifest
        with dir_lock(self.dir):
            manifest = self.read_manifest()  # another process may have just done it
            scan_start = time.time_ns()
            dirs = self.scan_dirs()
            if self.is_fresh(manifest, dirs):
                self.last_action = "fresh"
                return manifest
            if manifest is None or manifest.get("dtype") != self.dtype:
                return self._rebuild(dirs, scan_start)
            table = self._read_table(manifest)
            if table is None:
                return self._rebuild(dirs, scan_start)
            recorded: dict[str, int | None] = manifest.get("dirs") or {}
            by_dir: dict[str, list[str]] = {}
            for key in table:
                by_dir.setdefault(key.rsplit("/", 1)[0], []).append(key)
            if any(d not in dirs and by_dir.get(d) for d in recorded):
                return self._rebuild(dirs, scan_start)  # a video directory with rows disappeared
            new: dict[str, tuple[int, int]] = {}
            damaged = {k: n for k, n in (manifest.get("damaged") or {}).items()
                       if recorded.get(k.rsplit("/", 1)[0], -1) == dirs.get(k.rsplit("/", 1)[0])}
            for d, mtime in dirs.items():
                if recorded.get(d, -1) == mtime:
                    continue
                markers = self._list_markers(d)
                for key in by_dir.get(d, ()):
                    if markers.get(key) != tuple(table[key][2:4]):
                        return self._rebuild(dirs, scan_start)  # a shard was rewritten or removed
                new.update({k: v for k, v in markers.items() if k not in table})
            return self._append(manifest, table, new, dirs, scan_start, damaged)

    def _read_table(self, manifest: dict) -> dict[str, list] | None:
        try:
            return json.loads((self.dir / manifest["shards_file"]).read_text())
        except (OSError, ValueError, KeyError):
            return None

    def _rebuild(self, dirs: dict[str, int], scan_start: int) -> dict:
        old = self.read_manifest()
        gen = (int(old["gen"]) + 1) if old else 1
        markers: dict[str, tuple[int, int]] = {}
        for d in sorted(dirs):
            markers.update(self._list_markers(d))
        empty = {"format": FORMAT, "model_id": self.model_id, "dtype": self.dtype, "gen": gen, "rows": 0, "dim": 0,
                 "videos": [], "segments": [], "boxes": [FULL_BOX]}
        for p in (self._emb_path(gen, self.dtype), self._pts_path(gen), self._codes_path(gen), self._regions_path(gen)):
            p.unlink(missing_ok=True)
        manifest = self._append(empty, {}, markers, dirs, scan_start)
        self.last_action = "rebuild"
        return manifest

    def _append(self, manifest: dict, table: dict[str, list], new: dict[str, tuple[int, int]],
                dirs: dict[str, int], scan_start: int, damaged: dict[str, int] | None = None) -> dict:
        """Append the rows of the ``new`` markers; then commit a manifest (and shard table).
        ``damaged``: shards left out before, still left out (their directories did not change)."""
        damaged = dict(damaged or {})
        gen, dtype = int(manifest["gen"]), manifest["dtype"]
        rows, dim = int(manifest["rows"]), int(manifest["dim"])
        videos: list[str] = list(manifest["videos"])
        code_of = {v: i for i, v in enumerate(videos)}
        boxes = BoxCodes(manifest.get("boxes") or [FULL_BOX])
        table = dict(table)
        paths = (self._emb_path(gen, dtype), self._pts_path(gen), self._codes_path(gen), self._regions_path(gen))
        with _RowWriter(paths, (rows * dim * np.dtype(dtype).itemsize, rows * 8, rows * 4, rows * 2)) as out:
            # in video order, then time order: a full build lays out each video contiguously
            for key in sorted(new, key=_key_order):
                shard = self._read_shard(key, dim)
                if isinstance(shard, int):  # damaged: left out
                    damaged[key] = shard
                    continue
                vid, start, pts, emb, box = shard
                code = -1
                if len(pts):
                    dim = emb.shape[1]
                    code = code_of.setdefault(vid, len(videos))
                    if code == len(videos):
                        videos.append(vid)
                    out.add(emb.astype(dtype), pts, code, boxes.codes(box, len(pts)))
                table[key] = [rows, len(pts), *new[key], start, code]
                rows += len(pts)
        out = {
            "format": FORMAT, "model_id": self.model_id, "dtype": dtype, "gen": gen, "rows": rows, "dim": dim,
            "videos": videos, "segments": _segments(table), "boxes": boxes.boxes, "dirs": record_dirs(dirs, scan_start),
            "shards_file": f"shards-{gen}-{rows}.json", "updated_at": time.time(), "damaged": damaged,
        }
        self._commit(out, table)
        self.last_action = "append" if new else "settle"
        self.last_appended = len(new)
        return out

    def _read_shard(self, key: str, dim: int) -> tuple[str, float, np.ndarray, np.ndarray, np.ndarray | None] | int:
        """(video id, chunk start, pts, embeddings, boxes [n, 4] or None: all whole frame) of the chunk
        whose marker is ``key``, rows in time order; the number of frames left out (logged in one
        line) when its shard is damaged."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rel_dir, name = key.rsplit("/", 1)
        d = self.base / rel_dir
        marker = read_marker(d / f"{name}.done") or {}
        shard = d / str(marker.get("shard") or f"{name}.parquet")
        try:
            vid, start = str(marker.get("video_id") or d.name), float(marker.get("start", 0.0))
            with pa.memory_map(str(shard)) as src:  # ~3x faster than pq.read_table for small files
                data = src.read_buffer()
                problem = shard_problem(shard, marker, data=data)  # its bytes are read anyway: hash them
                if problem is None:
                    f = pq.ParquetFile(pa.BufferReader(data))
                    t = f.read(columns=["pts", "embedding", *(["box"] if "box" in f.schema_arrow.names else [])],
                               use_threads=False)
        except (OSError, ValueError) as e:
            problem = f"unreadable ({first_line(e)})"
        if problem is not None:
            frames = int(marker.get("frames") or marker.get("rows") or 0)
            log.info("damaged shard %s: %s; its %d frames are left out", shard, problem, frames)
            return frames
        n = t.num_rows
        if not n:
            return vid, start, np.zeros(0), np.zeros((0, dim), np.float32), None
        col = t.column("embedding").combine_chunks()
        width = col.type.list_size
        if dim and width != dim:
            from vidsearch.errors import IndexUnusableError

            raise IndexUnusableError(f"{d / name}: {width}-dim embeddings in a {dim}-dim index of {self.model_id}")
        emb = col.values.to_numpy(zero_copy_only=False).reshape(n, width)
        pts = t.column("pts").to_numpy()
        order = np.argsort(pts, kind="stable")  # stable: a frame's regions stay in order, region 0 first
        box = read_boxes(t)
        return vid, start, np.ascontiguousarray(pts[order], dtype=np.float64), emb[order], None if box is None else box[order]

    def _commit(self, manifest: dict, table: dict[str, list]) -> None:
        """Write the shard table, then the manifest (the commit point); drop what no longer counts."""
        write_json_atomic(self.dir / manifest["shards_file"], table, indent=None, separators=(",", ":"))
        write_json_atomic(self.dir / MANIFEST, manifest, indent=None, separators=(",", ":"))
        _fsync_dir(self.dir)
        self._remove_unreferenced(manifest)

    def _remove_unreferenced(self, manifest: dict) -> None:
        """Files of other generations and old shard tables (a reader that mapped them keeps its inode)."""
        gen, dtype = int(manifest["gen"]), manifest["dtype"]
        keep = {MANIFEST, ".lock", manifest["shards_file"], self._emb_path(gen, dtype).name,
                self._pts_path(gen).name, self._codes_path(gen).name, self._regions_path(gen).name}
        for p in self.dir.iterdir():
            if p.name not in keep and not p.name.startswith(".") and not p.is_dir():  # coarse/ is kept
                p.unlink(missing_ok=True)


class MatrixRows(NamedTuple):
    """A matrix as read: video ids, and row-aligned video codes, times and embeddings (all memory-mapped)."""

    videos: list[str]
    codes: np.ndarray  # int32 [N]
    pts: np.ndarray  # float64 [N]
    emb: np.ndarray  # [N, dim], memory-mapped
    video_rows: dict[int, np.ndarray] | None = None  # each video's rows in time order (built on demand)
    segments: np.ndarray | None = None  # int64 [S, 3]: (code, row0, n) runs, each video's in time order
    emb_path: Path | None = None  # the file behind ``emb`` (the flat scan maps it too)
    gen: int = 0
    damaged: dict[str, int] | None = None  # damaged shards left out: shard path -> frames
    region: np.ndarray | None = None  # int16 [N] index into ``boxes``; None: every row is a whole frame
    boxes: list | None = None


class _RowWriter:
    """Appends rows to the three matrix files past their committed sizes (what a crashed append left
    there is cut off first), buffering up to ``WRITE_ROWS`` rows; fsyncs on the way out."""

    def __init__(self, paths: tuple[Path, ...], sizes: tuple[int, ...]):
        self.paths, self.sizes = paths, sizes
        self.files: list = []
        self.bufs: tuple[list, ...] = tuple([] for _ in paths)
        self.buffered = 0

    def __enter__(self) -> "_RowWriter":
        try:
            for p, size in zip(self.paths, self.sizes):
                f = open(p, "r+b" if p.exists() else "w+b")
                self.files.append(f)
                f.truncate(size)
                f.seek(size)
        except BaseException:
            self._close()
            raise
        return self

    def add(self, emb: np.ndarray, pts: np.ndarray, code: int, region: np.ndarray) -> None:
        for buf, a in zip(self.bufs, (emb, pts, np.full(len(pts), code, dtype=np.int32), region)):
            buf.append(a)
        self.buffered += len(pts)
        if self.buffered >= WRITE_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.buffered:
            for f, buf in zip(self.files, self.bufs):
                f.write(np.ascontiguousarray(np.concatenate(buf)).tobytes())
                buf.clear()
            self.buffered = 0

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.flush()
                for f in self.files:
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            self._close()

    def _close(self) -> None:
        for f in self.files:
            f.close()


FULL_BOX = [0.0, 0.0, 1.0, 1.0]


def read_boxes(table) -> np.ndarray | None:
    """The ``box`` column of a shard table as float32 [n, 4]; None when it has none (all whole frames)."""
    if "box" not in table.column_names:
        return None
    col = table.column("box").combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(table.num_rows, 4)


class BoxCodes:
    """The boxes a matrix has seen (``manifest["boxes"]``, the whole frame first) and each row's code."""

    def __init__(self, boxes: list):
        self.boxes = [[round(float(v), 4) for v in b] for b in boxes]
        self.code_of = {tuple(b): i for i, b in enumerate(self.boxes)}

    def codes(self, box: np.ndarray | None, n: int) -> np.ndarray:
        if box is None:
            return np.zeros(n, np.int16)
        uniq, inverse = np.unique(np.round(box.astype(np.float64), 4), axis=0, return_inverse=True)
        table = np.array([self._code(tuple(float(v) for v in b)) for b in uniq], np.int16)
        return table[inverse.reshape(-1)]

    def _code(self, box: tuple) -> int:
        if box not in self.code_of:
            self.code_of[box] = len(self.boxes)
            self.boxes.append(list(box))
        return self.code_of[box]


def _key_order(key: str) -> tuple[str, str]:
    rel_dir, name = key.rsplit("/", 1)
    return rel_dir, name  # chunk names start with the zero-padded start time in ms


def _segments(table: dict[str, list]) -> list[list[int]]:
    """``[code, row0, n]`` runs: each video's rows in time order, adjacent rows merged."""
    per: dict[int, list[tuple[float, int, int]]] = {}
    for row0, n, _mtime, _size, start, code in table.values():
        if n:
            per.setdefault(int(code), []).append((float(start), int(row0), int(n)))
    out: list[list[int]] = []
    for code in sorted(per):
        runs: list[list[int]] = []
        for _start, row0, n in sorted(per[code]):
            if runs and runs[-1][1] + runs[-1][2] == row0:
                runs[-1][2] += n
            else:
                runs.append([code, row0, n])
        out.extend(runs)
    return out


# -- entry points ----------------------------------------------------------------------------
def refresh(store: IndexStore, model_id: str) -> str:
    """Update the matrix of ``model_id`` now (after an ingest, so the next query does not pay), and
    with it the compressed first stage of a big index (:mod:`vidsearch.index.coarse`) and the
    catalog facts a query reads (:mod:`vidsearch.index.meta`)."""
    cache = MatrixCache(store, model_id)
    manifest = cache.refresh()
    update_coarse(cache, manifest)
    with contextlib.suppress(OSError):
        meta.write_meta(store)
    return cache.last_action or "fresh"


def update_coarse(cache: MatrixCache, manifest: dict, min_rows: int | None = None) -> str:
    """Encode the rows the coarse stage does not cover yet (builds it the first time an index is big enough)."""
    if int(manifest.get("rows", 0)) < (coarse.MIN_ROWS if min_rows is None else min_rows):
        return "none"
    rows = cache._mapped(manifest)
    return coarse.update(cache.dir, manifest, rows.emb, dir_lock, coarse.MIN_ROWS if min_rows is None else min_rows)
