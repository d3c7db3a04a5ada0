"""The DuckDB catalog of an index (``catalog.duckdb``): files, videos, chunks, models, views.

Every SQL statement of the package lives here (``vidsearch sql`` runs the user's own). The shards
are the source of truth: :meth:`Catalog.sync` refreshes the ``chunks`` table from their markers
and rebuilds the views, which each channel declares (:mod:`vidsearch.index.channel`), so the
catalog knows no channel by name.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import IndexUnusableError, UserError, first_line, storage_error
from vidsearch.index.channel import AliasView, Channel, Fill, ShardView
from vidsearch.index.shards import SCHEMA_VERSION, IndexStore, model_slug

#: An older storage format so that the stock `duckdb` CLI (1.x as well as 2.x) opens the catalog.
STORAGE_COMPAT = "v1.0.0"
DDL = (Path(__file__).parent.parent / "data" / "catalog.sql").read_text()

# -- statements --------------------------------------------------------------------------------
SET_SCHEMA_VERSION = "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)"
INSERT_FILES_BATCH = "INSERT OR REPLACE INTO files SELECT *, now() FROM _batch"
_VIDEO_COLUMNS = "video_id, path, size, duration, width, height, fps, codec, creation_time, rotation, first_seen, last_seen"
#: a video probed again (an index from before ``rotation``) gains its turn and its size as shown
_ON_VIDEO_CONFLICT = """ON CONFLICT (video_id) DO UPDATE SET path = excluded.path, last_seen = now(),
   rotation = coalesce(excluded.rotation, videos.rotation), width = excluded.width, height = excluded.height"""
UPSERT_VIDEOS_BATCH = f"INSERT INTO videos ({_VIDEO_COLUMNS}) SELECT *, now(), now() FROM _batch {_ON_VIDEO_CONFLICT}"
INSERT_FILE = "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, now())"
UPSERT_VIDEO = f"INSERT INTO videos ({_VIDEO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now()) {_ON_VIDEO_CONFLICT}"
KNOWN_FILES = """SELECT f.path, f.size, f.mtime_ns, v.video_id, v.duration, v.width, v.height, v.fps, v.codec, v.creation_time,
   v.rotation FROM files f JOIN videos v USING (video_id)"""
REGISTER_MODEL = "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, now())"
MARK_PENDING = """INSERT INTO chunks (chunk_id, video_id, model_id, start_s, end_s, sampling, status, updated_at)
   VALUES (?, ?, ?, ?, ?, ?, 'pending', now()) ON CONFLICT (chunk_id) DO NOTHING"""
UNSETTLED_SPECS = """SELECT c.video_id, coalesce(v.path, ''), c.start_s, c.end_s, c.sampling, c.model_id
   FROM chunks c LEFT JOIN videos v USING (video_id) WHERE c.status NOT IN ('done', 'partial')"""
DONE_CHUNK_IDS = "SELECT chunk_id FROM chunks JOIN _vids USING (video_id) WHERE status IN ('done', 'partial')"
SETTLE_FILES = """UPDATE files SET status = s.state, error = s.err, updated_at = now()
   FROM (SELECT v.path,
                CASE WHEN coalesce(c.pending, 0) > 0 THEN 'pending'
                     WHEN coalesce(c.failed, 0) = 0 AND coalesce(c.partial, 0) = 0 THEN 'indexed'
                     WHEN c.done + c.partial > 0 THEN 'partial' ELSE 'failed' END AS state,
                c.err
         FROM _settle v LEFT JOIN (
             SELECT video_id, count(*) FILTER (WHERE status = 'done') AS done,
                    count(*) FILTER (WHERE status = 'partial') AS partial,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    count(*) FILTER (WHERE status = 'pending') AS pending,
                    any_value(error) FILTER (WHERE status = 'failed') AS err
             FROM chunks WHERE list_contains(?, model_id) GROUP BY video_id
         ) c USING (video_id)) s
   WHERE files.path = s.path"""
FILE_GAPS = """SELECT s.path, f.status, c.status, c.start_s, c.end_s, c.missing
   FROM _settle s JOIN files f USING (path)
   LEFT JOIN chunks c ON c.video_id = s.video_id AND c.status IN ('partial', 'failed') AND list_contains(?, c.model_id)"""
VIDEO_PATHS = "SELECT video_id, path FROM videos"
VIDEO_META = "SELECT video_id, path, duration, creation_time FROM videos"
CHUNK_COUNT = "SELECT count(*) FROM chunks"
DELETE_CHUNK = "DELETE FROM chunks WHERE chunk_id = ?"
#: videos no file holds any more: another content was identified at their path since
ORPHANED_VIDEOS = """SELECT video_id, path FROM videos v
   WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.video_id = v.video_id) ORDER BY path"""
DELETE_VIDEO_CHUNKS = "DELETE FROM chunks WHERE video_id = ?"
PENDING_OF_VIDEOS = "SELECT count(*) FROM chunks WHERE status = 'pending' AND list_contains(?, video_id)"
DELETE_VIDEO = "DELETE FROM videos WHERE video_id = ?"
FILE_VIDEOS = "SELECT path, video_id FROM files ORDER BY path"
DELETE_FILE = "DELETE FROM files WHERE path = ?"
#: a video whose path was forgotten while another file holds the same content: named by that file
REPOINT_VIDEOS = """UPDATE videos SET path = (SELECT min(f.path) FROM files f WHERE f.video_id = videos.video_id)
   WHERE path NOT IN (SELECT path FROM files) AND EXISTS (SELECT 1 FROM files f WHERE f.video_id = videos.video_id)"""
REQUEUE_FAILED = "UPDATE chunks SET status = 'pending', error = NULL, updated_at = now() WHERE chunk_id = ? AND status = 'failed'"
SYNC_CHUNKS = """INSERT OR REPLACE INTO chunks
   (chunk_id, video_id, model_id, start_s, end_s, sampling, status, frames, shard, error, updated_at, covered_s, missing_s, missing,
    embedded)
   SELECT chunk_id, video_id, model_id, start_s, end_s, sampling,
          CASE WHEN status = 'done' AND coalesce(missing_s, 0) > 0 THEN 'partial' ELSE status END,
          frames::INTEGER, shard, error, now(), covered_s, missing_s, missing, embedded::INTEGER
   FROM _markers"""
MODELS_NEWEST_FIRST = "SELECT model_id, dim FROM models ORDER BY last_used DESC"
MODEL_ROW = "SELECT name, info FROM models WHERE model_id = ?"
MODEL_DIM = "SELECT dim FROM models WHERE model_id = ?"
LATEST_MODEL = "SELECT model_id FROM models ORDER BY last_used DESC LIMIT 1"
FRAMES_MODEL = "SELECT model_id FROM frames LIMIT 1"
INDEXED_MODELS = "SELECT DISTINCT m.model_id, m.name FROM models m JOIN chunks c USING (model_id) WHERE c.status IN ('done', 'partial') ORDER BY 1"
VIDEOS_DONE = """SELECT count(*), coalesce(sum(duration), 0) / 3600 FROM videos
   WHERE video_id IN (SELECT video_id FROM chunks WHERE status IN ('done', 'partial'))"""
FRAMES_PER_MODEL = "SELECT model_id, coalesce(sum(frames), 0) FROM chunks WHERE status IN ('done', 'partial') GROUP BY model_id"
CHUNKS_BY_STATUS = "SELECT status, count(*) FROM chunks GROUP BY status"
FAILED_FILES = "SELECT path, error FROM files WHERE status = 'failed' ORDER BY path"
FAILED_CHUNKS = """SELECT v.path, c.start_s, c.end_s, c.error FROM chunks c LEFT JOIN videos v USING (video_id)
   WHERE c.status = 'failed' ORDER BY v.path, c.start_s"""
MODEL_FRAMES = """SELECT m.model_id, m.name, m.dim, sum(c.frames), sum(coalesce(c.embedded, c.frames)) FROM models m
   LEFT JOIN chunks c ON c.model_id = m.model_id AND c.status IN ('done', 'partial')
   GROUP BY ALL ORDER BY m.model_id"""
PER_VIDEO = """SELECT v.path, v.duration,
          count(*) FILTER (WHERE c.status = 'done'),
          count(*) FILTER (WHERE c.status = 'pending'),
          count(*) FILTER (WHERE c.status = 'failed'),
          count(*) FILTER (WHERE c.status = 'partial'),
          coalesce(sum(c.missing_s) FILTER (WHERE c.status = 'partial'), 0)
   FROM videos v JOIN chunks c USING (video_id) GROUP BY ALL ORDER BY v.path"""
PARTIAL_CHUNKS = """SELECT v.path, c.model_id, c.start_s, c.end_s, c.covered_s, c.missing_s, c.missing
   FROM chunks c LEFT JOIN videos v USING (video_id) WHERE c.status = 'partial' ORDER BY v.path, c.model_id, c.start_s"""
#: what the catalog can tell of a chunk's shard from its row (a view fill's ``when``)
CHUNK_FACTS = {"embedded": "embedded IS NOT NULL", "regions": "sampling LIKE '%+regions=%'"}
FILL_FACTS = ("SELECT count(*), " + ", ".join(f"count(*) FILTER (WHERE {v})" for v in CHUNK_FACTS.values())
              + " FROM chunks WHERE model_id = ? AND status IN ('done', 'partial')")
#: meta key: the chunk rows carry the facts above (rows synced by an older version do not, until re-read)
FACTS_KEY = "chunk_facts"
GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
MARKER_COLUMNS = ("chunk_id", "video_id", "model_id", "start_s", "end_s", "sampling", "status", "frames", "shard", "error",
                  "covered_s", "missing_s", "missing", "embedded")


def _float_or_none(v) -> float | None:
    return None if v is None else float(v)


def frames_model_id(con) -> str | None:
    """The model id of the rows the ``frames`` view reads, else the most recently used model
    (None when the index has neither); ``con``: any connection to the catalog."""
    try:
        rows = con.execute(FRAMES_MODEL).fetchall()
        row = rows[0] if rows else None
    except Exception:  # noqa: BLE001 - duckdb raises several error types for a missing view / files
        row = None
    if row:
        return row[0]
    rows = con.execute(LATEST_MODEL).fetchall()
    return rows[0][0] if rows else None


def model_dim(con, model_id: str) -> int:
    """The embedding width of ``model_id`` (``con``: any connection to the catalog)."""
    return int(con.execute(MODEL_DIM, [model_id]).fetchall()[0][0])


# -- views from what channels declare ----------------------------------------------------------
def duck_type(arrow_type) -> str:
    """The DuckDB type of an Arrow shard column (vectors as fixed-size ``FLOAT[n]`` arrays, which
    ``array_cosine_similarity`` needs in every DuckDB version)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_list(arrow_type):
        return f"{duck_type(arrow_type.value_type)}[{int(arrow_type.list_size)}]"
    if pa.types.is_list(arrow_type):
        return f"{duck_type(arrow_type.value_type)}[]"
    names = {pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.float32(): "FLOAT", pa.int64(): "BIGINT",
             pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN", pa.timestamp("us"): "TIMESTAMP"}
    if arrow_type not in names:
        raise TypeError(f"no catalog type for shard column type {arrow_type}")
    return names[arrow_type]


def _view_columns(view: ShardView, empty: bool) -> str:
    """The SELECT list of a view: shard columns (vectors cast to their array type), packed arrays."""
    import pyarrow as pa

    arrays = dict(view.arrays)
    out = []
    for name in view.columns or tuple(view.schema.names):
        if name in arrays:
            src = arrays[name]
            expr = "NULL" if empty else f"[{', '.join(src)}]"
            out.append(f"{expr}::FLOAT[{len(src)}] AS {name}")
            continue
        field = view.schema.field(name)
        if empty:
            out.append(f"NULL::{duck_type(field.type)} AS {name}")
        elif pa.types.is_fixed_size_list(field.type):
            out.append(f"{name}::{duck_type(field.type)} AS {name}")
        else:
            out.append(name)
    return ", ".join(out)


def _literal_of(value, arrow_type) -> str:
    """A fill's constant default, typed; an array's as a list (DuckDB 1.x cannot coalesce arrays)."""
    if isinstance(value, tuple):
        return f"[{', '.join(repr(float(v)) for v in value)}]::{duck_type(arrow_type.value_type)}[]"
    return f"{value!r}::{duck_type(arrow_type)}"


def _fill_column(fill: Fill, have: str) -> str:
    """A fill's SELECT item: the shard column (``have`` "all"), its default ("none"), or either per
    row ("some": the column is NULL where a shard lacks it)."""
    import pyarrow as pa

    kind = duck_type(fill.type)
    default = fill.default if isinstance(fill.default, str) else _literal_of(fill.default, fill.type)
    if have == "all":
        return fill.name if not pa.types.is_fixed_size_list(fill.type) else f"{fill.name}::{kind} AS {fill.name}"
    if have == "none":
        return f"{default}::{kind} AS {fill.name}"
    if pa.types.is_fixed_size_list(fill.type):
        list_kind = f"{duck_type(fill.type.value_type)}[]"
        return f"coalesce({fill.name}::{list_kind}, {default})::{kind} AS {fill.name}"
    return f"coalesce({fill.name}, {default})::{kind} AS {fill.name}"


def create_view_sql(view: ShardView, glob: str | None, have: dict[str, str] | None = None) -> str:
    """``CREATE OR REPLACE VIEW`` over the shards matching ``glob`` (None: an empty view).

    ``have``: for each of the view's fills, whether "all", "none" or only "some" of its shards
    carry the column (default "none"). With "some", the shards are read by column name and a
    typed empty row supplies the columns no file has (``UNION ALL BY NAME``), which costs reading
    every shard's footer per query; otherwise the plain read."""
    have = have or {}
    if glob is None:
        fills = "".join(f", NULL::{duck_type(f.type)} AS {f.name}" for f in view.fills)
        return f"CREATE OR REPLACE VIEW {view.name} AS SELECT {_view_columns(view, True)}{fills} WHERE false"
    glob = glob.replace("'", "''")
    cols = ", ".join([_view_columns(view, False), *(_fill_column(f, have.get(f.name, "none")) for f in view.fills)])
    if not any(have.get(f.name) == "some" for f in view.fills):
        return f"CREATE OR REPLACE VIEW {view.name} AS SELECT {cols} FROM read_parquet('{glob}')"
    typed = ", ".join(f"NULL::{duck_type(f.type)} AS {f.name}" for f in view.fills)
    return (f"CREATE OR REPLACE VIEW {view.name} AS SELECT {cols} FROM (SELECT * FROM read_parquet('{glob}', "
            f"union_by_name = true) UNION ALL BY NAME SELECT {typed} WHERE false)")


def alias_view_sql(name: str, target: str) -> str:
    return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {target}"


@functools.lru_cache(maxsize=None)
def _batch_schema(table: str):
    """The Arrow schema of the ``files`` / ``videos`` columns :meth:`Catalog.batch` writes, in table order."""
    import pyarrow as pa

    s, i64, i32, f64 = pa.string(), pa.int64(), pa.int32(), pa.float64()
    cols = {
        "files": [("path", s), ("size", i64), ("mtime_ns", i64), ("video_id", s), ("status", s), ("error", s)],
        "videos": [("video_id", s), ("path", s), ("size", i64), ("duration", f64), ("width", i32), ("height", i32),
                   ("fps", f64), ("codec", s), ("creation_time", s), ("rotation", i32)],
    }[table]
    return pa.schema(cols)


#: how long opening the catalog waits for another process's brief hold on it (DuckDB: one process at a time)
BUSY_WAIT_S = 15.0


def _connect(store: IndexStore, read_only: bool):
    """A DuckDB connection to the catalog. An ingest holds the file only while it records files or
    settles chunks, so a query or ``status`` meeting that hold waits for it (up to ``BUSY_WAIT_S``)."""
    import duckdb

    config = {} if read_only else {"storage_compatibility_version": STORAGE_COMPAT}
    deadline = time.monotonic() + BUSY_WAIT_S
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(store.catalog_path), read_only=read_only, config=config)
        except duckdb.IOException as e:
            text = str(e).splitlines()[0]
            fault = storage_error(e, store.catalog_path)
            if fault is not None:
                raise fault from None
            if "lock" not in text.lower() or time.monotonic() > deadline:
                raise IndexUnusableError(f"cannot open {store.catalog_path}: {text} (is another ingest running?)") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class Catalog:
    """The DuckDB catalog. Open it briefly (``with Catalog(store) as cat:``): DuckDB allows one writer."""

    def __init__(self, store: IndexStore, read_only: bool = False):
        self.store = store
        self.read_only = read_only
        self._buffer: dict[str, dict] | None = None  # rows waiting to be written (see batch())
        if read_only and not store.catalog_path.exists():
            raise IndexUnusableError(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
        store.root.mkdir(parents=True, exist_ok=True)
        self.con = _connect(store, read_only)
        self._reread = False  # the next sync reads every marker (rows synced before CHUNK_FACTS existed)
        if not read_only:
            self.con.execute(DDL)
            self.con.execute(SET_SCHEMA_VERSION, [str(SCHEMA_VERSION)])
            if not self.con.execute(GET_META, [FACTS_KEY]).fetchall():
                self._reread = bool(self.chunk_count())
                if not self._reread:
                    self.con.execute(SET_META, [FACTS_KEY, "1"])

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def _registered(self, name: str, table) -> Iterator[None]:
        """An Arrow table visible to SQL as ``name`` while the block runs."""
        self.con.register(name, table)
        try:
            yield
        finally:
            self.con.unregister(name)

    @contextlib.contextmanager
    def batch(self, every_s: float = 2.0) -> Iterator[Callable[[], None]]:
        """Buffer :meth:`record_file` and :meth:`upsert_video` and write them set-wise (a single-row
        upsert costs DuckDB milliseconds; thousands of rows in one statement cost about as much).
        Yields ``tick()``, to call after each file: it writes the buffer every ``every_s`` seconds,
        so an interrupted scan keeps what it learnt. The rest is written on the way out, also on
        Ctrl-C or an error (each row is a fact about one file: nothing half done)."""
        self._buffer = {"files": {}, "videos": {}}
        last = time.monotonic()

        def tick() -> None:
            nonlocal last
            if time.monotonic() - last >= every_s:
                self._flush()
                last = time.monotonic()

        try:
            yield tick
        finally:
            try:
                self._flush()
            finally:
                self._buffer = None

    def _flush(self) -> None:
        import pyarrow as pa

        for table, rows in self._buffer.items():
            if not rows:
                continue
            schema = _batch_schema(table)
            with self._registered("_batch", pa.Table.from_pydict(dict(zip(schema.names, zip(*rows.values()))), schema=schema)):
                self.con.execute(INSERT_FILES_BATCH if table == "files" else UPSERT_VIDEOS_BATCH)
            rows.clear()

    # -- files and videos -----------------------------------------------------------------
    def known_files(self) -> dict[str, tuple]:
        """Every file the catalog has identified: ``path -> (size, mtime_ns, video_id, duration,
        width, height, fps, codec, creation_time, rotation)``, so a re-run checks a file without a
        query (``rotation`` None: probed by a version that did not record it)."""
        return {r[0]: r[1:] for r in self.con.execute(KNOWN_FILES).fetchall()}

    def record_file(self, path: str, size: int | None, mtime_ns: int | None, video_id: str | None, status: str, error: str | None = None) -> None:
        row = (path, size, mtime_ns, video_id, status, error)
        if self._buffer is not None:
            self._buffer["files"][path] = row  # the last word on a path wins, as with single upserts
            return
        self.con.execute(INSERT_FILE, list(row))

    def upsert_video(self, video_id: str, info: dict[str, Any], size: int) -> None:
        row = (video_id, info["path"], size, info["duration"], info["width"], info["height"], info.get("fps"),
               info.get("codec"), info.get("creation_time"), info.get("rotation"))
        if self._buffer is not None:
            self._buffer["videos"][video_id] = row
            return
        self.con.execute(UPSERT_VIDEO, list(row))

    def video_paths(self) -> dict[str, str]:
        return dict(self.con.execute(VIDEO_PATHS).fetchall())

    def video_meta(self) -> list[tuple[str, str, float, str | None]]:
        """``(video_id, path, duration, creation_time)`` of every video."""
        return self.con.execute(VIDEO_META).fetchall()

    # -- models -----------------------------------------------------------------------------
    def register_model(self, model_id: str, name: str, dim: int, info: dict | None = None) -> None:
        self.con.execute(REGISTER_MODEL, [model_id, model_slug(model_id), name, dim, json.dumps(info or {})])

    def models(self) -> list[tuple[str, int]]:
        """``(model_id, dim)`` of every image model, most recently used first."""
        return [(m, int(d)) for m, d in self.con.execute(MODELS_NEWEST_FIRST).fetchall()]

    def model_row(self, model_id: str) -> tuple[str, str | None] | None:
        """``(name, info JSON)`` of a model, None if the catalog does not have it."""
        rows = self.con.execute(MODEL_ROW, [model_id]).fetchall()
        return rows[0] if rows else None

    def indexed_models(self) -> list[tuple[str, str]]:
        """``(model_id, name)`` of the models that have done chunks."""
        return self.con.execute(INDEXED_MODELS).fetchall()

    # -- chunks -----------------------------------------------------------------------------
    def chunk_count(self) -> int:
        return int(self.con.execute(CHUNK_COUNT).fetchall()[0][0])

    def mark_pending(self, specs: Iterable[ChunkSpec]) -> None:
        rows = [(s.chunk_id, s.video_id, s.model_id, s.start, s.end, s.sampling) for s in specs]
        if rows:
            self.con.executemany(MARK_PENDING, rows)

    def requeue_failed(self, chunk_ids: Iterable[str]) -> None:
        """Failed chunks that are sent again become pending."""
        rows = [[c] for c in chunk_ids]
        if rows:
            self.con.executemany(REQUEUE_FAILED, rows)

    def orphaned_videos(self) -> dict[str, str]:
        """``video_id -> path`` of the videos no file holds any more: a scan identified other content
        at their path (a file that only fails to read keeps its last content, :meth:`record_file`)."""
        return dict(self.con.execute(ORPHANED_VIDEOS).fetchall())

    def file_videos(self) -> dict[str, str | None]:
        """``path -> video_id`` of every file the catalog knows (None: it never read as a video)."""
        return dict(self.con.execute(FILE_VIDEOS).fetchall())

    def forget_files(self, paths: Iterable[str]) -> None:
        """Drop these paths; a video another file still holds is named by that file from now on."""
        rows = [[p] for p in paths]
        if rows:
            self.con.executemany(DELETE_FILE, rows)
            self.con.execute(REPOINT_VIDEOS)

    def pending_chunks(self, video_ids: Iterable[str]) -> int:
        """Chunks of these videos planned and not yet done (queued for workers, or an ingest stopped)."""
        return int(self.con.execute(PENDING_OF_VIDEOS, [list(video_ids)]).fetchone()[0])

    def forget_video(self, video_id: str) -> None:
        """Drop a video and its chunks from the catalog (its shards are removed by the caller)."""
        self.con.execute(DELETE_VIDEO_CHUNKS, [video_id])
        self.con.execute(DELETE_VIDEO, [video_id])

    def forget_chunks(self, chunk_ids: Iterable[str]) -> None:
        rows = [[c] for c in chunk_ids]
        if rows:
            self.con.executemany(DELETE_CHUNK, rows)

    def unsettled_specs(self) -> list[ChunkSpec]:
        """Chunks the catalog does not have as done (pending, or failed and perhaps retried since):
        the only ones whose markers can have changed behind its back."""
        return [ChunkSpec(*r) for r in self.con.execute(UNSETTLED_SPECS).fetchall()]

    def done_chunk_ids(self, video_ids: Iterable[str]) -> set[str]:
        """Chunks of these videos that the catalog has as done."""
        import pyarrow as pa

        with self._registered("_vids", pa.table({"video_id": pa.array(list(video_ids), pa.string())})):
            return {c for (c,) in self.con.execute(DONE_CHUNK_IDS).fetchall()}

    def settle_files(self, videos: dict[str, str], model_ids: Iterable[str]) -> None:
        """Set each file's status from its video's chunks of ``model_ids``, in one statement:
        pending while a chunk is, else indexed, partial (some failed) or failed (all failed);
        ``videos``: video_id -> path."""
        import pyarrow as pa

        if not videos:
            return
        with self._registered("_settle", pa.table({"video_id": list(videos), "path": list(videos.values())})):
            self.con.execute(SETTLE_FILES, [list(model_ids)])

    def file_gaps(self, videos: dict[str, str], model_ids: Iterable[str]) -> dict[str, tuple[str, list[tuple[float, float]]]]:
        """``path -> (file status, stretches without frames)`` of ``videos`` (video_id -> path), from
        their chunks of ``model_ids``: a partial chunk's missing stretches, a failed chunk's span."""
        import pyarrow as pa

        out: dict[str, tuple[str, list]] = {}
        if not videos:
            return out
        with self._registered("_settle", pa.table({"video_id": list(videos), "path": list(videos.values())})):
            rows = self.con.execute(FILE_GAPS, [list(model_ids)]).fetchall()
        for path, fstatus, cstatus, start, end, missing in rows:
            gaps = out.setdefault(path, (fstatus, []))[1]
            if cstatus == "failed":
                gaps.append((start, end))
            elif cstatus == "partial":
                gaps.extend(tuple(g) for g in json.loads(missing or "[]"))
        return out

    # -- sync from shards -----------------------------------------------------------------
    def sync(self, specs: Iterable[ChunkSpec] | None = None, channels: Sequence[Channel] = ()) -> dict[str, int]:
        """Refresh ``chunks`` from the markers on disk and (re)create the views of ``channels``.

        ``specs``: read only these chunks' markers (an ingest's own chunks; a chunk without a
        marker yet keeps its row); None: every marker of the index (a full rebuild, also done once
        for a catalog whose rows predate the facts its views rely on, :data:`CHUNK_FACTS`).
        """
        if self._reread:
            specs = None
        if specs is None:
            records: Iterable[tuple[str, dict]] = self.store.iter_records()
        else:
            records = (r for r in map(self.store.read_record, specs) if r is not None)
        rows: dict[str, tuple] = {}
        for kind, r in records:
            cid = r["chunk_id"]
            if kind == "failed" and cid in rows:
                continue  # a done marker wins over a stale failure
            rows[cid] = (
                cid, r["video_id"], r["model_id"], float(r["start"]), float(r["end"]), r["sampling"],
                kind, r.get("frames"), r.get("shard"), r.get("error"),
                _float_or_none(r.get("covered_s")), _float_or_none(r.get("missing_s")),
                json.dumps(r["missing"]) if r.get("missing") else None, r.get("embedded"),
            )
        counts = {"done": 0, "failed": 0}
        if rows:
            self._write_markers(rows)
            for r in rows.values():
                counts[r[6]] += 1
        if self._reread:
            self.con.execute(SET_META, [FACTS_KEY, "1"])
            self._reread = False
        self.refresh_views(channels)
        return counts

    def _write_markers(self, rows: dict[str, tuple]) -> None:
        import pyarrow as pa

        cols = list(zip(*rows.values()))
        with self._registered("_markers", pa.table({n: list(c) for n, c in zip(MARKER_COLUMNS, cols)})):
            self.con.execute(SYNC_CHUNKS)

    def refresh_views(self, channels: Sequence[Channel]) -> None:
        """(Re)create every view the ``channels`` declare: a view over shards that exist, else an
        empty one with the same columns (or none, for an optional view); an alias reads the first
        of its candidates that was created."""
        models = self.models()
        created: set[str] = set()
        for channel in channels:
            for view in channel.views(models):
                if isinstance(view, AliasView):
                    target = next((c for c in view.candidates if c in created), None)
                    sql = alias_view_sql(view.name, target) if target else create_view_sql(view.empty, None)
                elif view.model_id is not None and self.store.has_shards(view.model_id):
                    sql = create_view_sql(view, self.store.shard_glob(view.model_id), self._fills_present(view))
                elif view.path is not None and any(self.store.root.glob(view.path)):
                    sql = create_view_sql(view, str(self.store.root / view.path))
                elif view.optional:
                    continue
                else:
                    sql = create_view_sql(view, None)
                self.con.execute(sql)
                created.add(view.name)

    def _fills_present(self, view: ShardView) -> dict[str, str]:
        """For each fill of ``view``: do "all", "none" or "some" of its model's done chunks carry it?"""
        if not view.fills:
            return {}
        total, *facts = self.con.execute(FILL_FACTS, [view.model_id]).fetchall()[0]
        counts = dict(zip(CHUNK_FACTS, facts))
        out = {}
        for f in view.fills:
            n = counts[f.when]
            out[f.name] = "all" if total and n == total else "none" if total and n == 0 else "some"
        return out

    # -- reporting -------------------------------------------------------------------------
    def summary(self, channels: Sequence[Channel] = ()) -> dict[str, Any]:
        """What ``vidsearch status`` reports (a partial chunk: done, with stretches its frames do not cover). Done frames add up under the ``report_key`` of the
        first of ``channels`` that owns their model id, else under ``frames``."""
        q = self.con.execute
        videos, hours = q(VIDEOS_DONE).fetchone()
        frames = {"frames": 0, **{ch.report_key: 0 for ch in channels}}
        for model_id, n in q(FRAMES_PER_MODEL).fetchall():
            key = next((ch.report_key for ch in channels if ch.owns(model_id)), "frames")
            frames[key] += int(n)
        by_status = dict(q(CHUNKS_BY_STATUS).fetchall())
        return {
            "index": str(self.store.root),
            "videos": videos,
            "hours": round(hours, 3),
            **frames,
            "chunks": {s: by_status.get(s, 0) for s in ("done", "pending", "failed", "partial")},
            # embedded: the frames that went through the image encoder (fewer with motion gating)
            "models": [{"model_id": m, "name": n, "dim": d, "frames": f or 0, "embedded": e or 0}
                       for m, n, d, f, e in q(MODEL_FRAMES).fetchall()],
            "failed_files": [{"path": p, "error": e} for p, e in q(FAILED_FILES).fetchall()],
            "failed_chunks": [{"path": p, "start": s, "end": e, "error": err} for p, s, e, err in q(FAILED_CHUNKS).fetchall()],
            "partial_chunks": [
                {"path": p, "model_id": m, "start": s, "end": e, "covered_s": c, "missing_s": ms, "missing": json.loads(gaps or "[]")}
                for p, m, s, e, c, ms, gaps in q(PARTIAL_CHUNKS).fetchall()
            ],
            "per_video": [
                {"path": p, "duration": d, "done": dn, "pending": pe, "failed": fa, "partial": pa, "missing_s": round(ms, 3)}
                for p, d, dn, pe, fa, pa, ms in q(PER_VIDEO).fetchall()
            ],
        }


# -- the sandbox of `vidsearch sql` ------------------------------------------------------------
def sandboxed_connection(store: IndexStore):
    """A private in-memory DuckDB with the catalog attached read-only as the default database, file
    access limited to the index directory, no network or extensions, and the configuration locked.
    Returns (connection, its temp directory, outside the index; the caller removes it)."""
    import duckdb

    if not store.catalog_path.exists():
        raise IndexUnusableError(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
    tmp = tempfile.mkdtemp(prefix="vidsearch-sql-")  # DuckDB spills here, never into the index
    con = duckdb.connect(":memory:")  # not shared: settings here cannot reach another connection
    try:
        con.execute(f"SET temp_directory = {_literal(tmp)}")
        try:
            con.execute(f"ATTACH {_literal(store.catalog_path)} AS catalog (READ_ONLY)")
        except duckdb.Error as e:
            raise IndexUnusableError(
                f"cannot open {store.catalog_path}: {first_line(e)} (is an ingest running? try again when it ends)"
            ) from None
        con.execute("USE catalog")
        roots = dict.fromkeys(str(p).rstrip(os.sep) + os.sep for p in (store.root, store.root.resolve()))
        for setting in (f"allowed_directories = [{', '.join(map(_literal, roots))}]",
                        "enable_external_access = false", "autoinstall_known_extensions = false",
                        "autoload_known_extensions = false", "lock_configuration = true"):
            try:
                con.execute(f"SET {setting}")
            except duckdb.Error as e:  # an old duckdb without the setting: refuse rather than run unguarded
                raise UserError(f"vidsearch sql needs duckdb 1.2 or later (SET {setting.split()[0]}: "
                                f"{first_line(e)}); upgrade it: pip install -U duckdb") from None
    except BaseException:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return con, tmp


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"
