"""Parquet shards + DuckDB catalog adapter.

Index directory layout::

    catalog.duckdb                               DuckDB catalog (files, videos, chunks, frames views)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.parquet   one shard per chunk: the embeddings
    shards/<model>/<vid[:2]>/<vid>/<chunk>.done      marker, written after the shard (JSON)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.failed    why the chunk failed (JSON), if it did
    matrix/<model>/                              query-side copies (vidsearch.index.matrix, vidsearch.ocr.textcache)

A shard is written to a temporary name and renamed into place; only then is its ``.done``
marker written. A chunk is done exactly when its marker exists, so an interrupted ingest
loses nothing that was marked, and a re-run (or a redelivered Celery task) overwrites the
same shard name instead of adding rows. The shards are the source of truth; the catalog is
refreshed from them (:meth:`Catalog.sync`) and can always be rebuilt.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from vidsearch.errors import IndexError_
from vidsearch.core.plan import ChunkSpec

CATALOG = "catalog.duckdb"
SHARDS = "shards"
ROW_GROUP = 128 * 1024
SCHEMA_VERSION = 1
STORAGE_COMPAT = "v1.0.0"


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


def frames_schema(dim: int):
    import pyarrow as pa

    return shard_schema(pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False))


def _unique() -> str:
    """A temp-name part no other writer uses, even on another machine sharing the directory."""
    import uuid

    return uuid.uuid4().hex


def _write_json_atomic(path: Path, data: Any, **dump_kw: Any) -> None:
    """Write ``data`` as JSON to ``path`` (temp file + fsync + rename); ``dump_kw`` go to
    :func:`json.dump` (default ``indent=1``)."""
    tmp = path.with_name(f".{path.name}.{_unique()}.tmp")  # one per writer: deliveries may overlap
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, **{"indent": 1, **dump_kw})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_marker(path: str | os.PathLike) -> dict | None:
    """A ``.done`` / ``.failed`` marker as a dict; None when it is missing or unreadable (markers
    are written atomically: an unreadable one was damaged on disk)."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


class IndexStore:
    """The shard side of an index directory (safe to use from many processes and machines)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        self.shards_root = self.root / SHARDS
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

    def write_shard(self, spec: ChunkSpec, pts: np.ndarray, embeddings: np.ndarray, extra: dict | None = None) -> dict:
        """Write the chunk's frame embeddings (temp file + rename), then its done marker. Idempotent."""
        import pyarrow as pa

        pts = np.asarray(pts, dtype=np.float64)
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, dim = (emb.shape[0], emb.shape[1]) if emb.ndim == 2 else (0, 0)
        if len(pts) != n:
            raise ValueError("pts and embeddings differ in length")
        table = pa.Table.from_arrays(
            [
                pa.array([spec.video_id] * n, pa.string()),
                pa.array([spec.path] * n, pa.string()),
                pa.array([spec.chunk_id] * n, pa.string()),
                pa.array(pts, pa.float64()),
                pa.array([spec.model_id] * n, pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim),
            ],
            schema=frames_schema(dim),
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
        tmp = d / f".{final.name}.{_unique()}.tmp"
        try:
            pq.write_table(table, tmp, use_dictionary=False, row_group_size=ROW_GROUP, compression=compression)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:  # Ctrl-C or a full disk mid-write: leave no temp file behind
            tmp.unlink(missing_ok=True)
            raise
        marker = {
            "chunk_id": spec.chunk_id, **spec.to_dict(), "shard": final.name, "written_at": time.time(),
            **(extra or {}),
        }
        self.failed_path(spec).unlink(missing_ok=True)
        _write_json_atomic(self.marker_path(spec), marker)
        return marker

    def write_failed(self, spec: ChunkSpec, error: str) -> dict:
        d = self.chunk_dir(spec)
        d.mkdir(parents=True, exist_ok=True)
        rec = {"chunk_id": spec.chunk_id, **spec.to_dict(), "error": error, "failed_at": time.time()}
        _write_json_atomic(self.failed_path(spec), rec)
        return rec

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

    def read_record(self, spec: ChunkSpec) -> tuple[str, dict] | None:
        """``("done"|"failed", record)`` of one chunk from its marker (done wins); None while it has neither."""
        for kind, path in (("done", self.marker_path(spec)), ("failed", self.failed_path(spec))):
            rec = read_marker(path)
            if rec is not None:
                rec["_dir"] = str(path.parent)
                return kind, rec
        return None

    def done_marker(self, spec: ChunkSpec) -> dict | None:
        """The chunk's done marker, or None while it is not done."""
        return read_marker(self.marker_path(spec))

    def done_shards(self, model_id: str) -> list[Path]:
        out = []
        for kind, rec in self.iter_records(model_id):
            if kind == "done":
                out.append(Path(rec["_dir"]) / rec["shard"])
        return sorted(out)

    def shard_glob(self, model_id_or_slug: str) -> str:
        slug = model_id_or_slug if "@" not in model_id_or_slug else model_slug(model_id_or_slug)
        return str(self.shards_root / slug / "*" / "*" / "*.parquet")

    def catalog(self, read_only: bool = False) -> "Catalog":
        return Catalog(self, read_only=read_only)


_DDL = (Path(__file__).parent.parent / "data" / "catalog.sql").read_text()


@functools.lru_cache(maxsize=None)
def _batch_schema(table: str):
    """The Arrow schema of the ``files`` / ``videos`` columns :meth:`Catalog.batch` writes, in table order."""
    import pyarrow as pa

    s, i64, i32, f64 = pa.string(), pa.int64(), pa.int32(), pa.float64()
    cols = {
        "files": [("path", s), ("size", i64), ("mtime_ns", i64), ("video_id", s), ("status", s), ("error", s)],
        "videos": [("video_id", s), ("path", s), ("size", i64), ("duration", f64), ("width", i32), ("height", i32),
                   ("fps", f64), ("codec", s), ("creation_time", s)],
    }[table]
    return pa.schema(cols)


class Catalog:
    """The DuckDB catalog. Open it briefly (``with store.catalog() as cat:``): DuckDB allows one writer."""

    def __init__(self, store: IndexStore, read_only: bool = False):
        import duckdb

        self.store = store
        self.read_only = read_only
        self._buffer: dict[str, dict] | None = None  # rows waiting to be written (see batch())
        if read_only and not store.catalog_path.exists():
            raise IndexError_(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
        store.root.mkdir(parents=True, exist_ok=True)
        try:
            # An older storage format so that the stock `duckdb` CLI (1.x as well as 2.x) opens the catalog.
            config = {} if read_only else {"storage_compatibility_version": STORAGE_COMPAT}
            self.con = duckdb.connect(str(store.catalog_path), read_only=read_only, config=config)
        except duckdb.IOException as e:
            raise IndexError_(f"cannot open {store.catalog_path}: {str(e).splitlines()[0]} (is another ingest running?)") from None
        if not read_only:
            self.con.execute(_DDL)
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

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
                if table == "files":
                    self.con.execute("INSERT OR REPLACE INTO files SELECT *, now() FROM _batch")
                else:
                    self.con.execute(
                        """INSERT INTO videos SELECT *, now(), now() FROM _batch
                           ON CONFLICT (video_id) DO UPDATE SET path = excluded.path, last_seen = now()"""
                    )
            rows.clear()

    # -- files and videos -----------------------------------------------------------------
    def known_files(self) -> dict[str, tuple]:
        """Every file the catalog has identified: ``path -> (size, mtime_ns, video_id, duration,
        width, height, fps, codec, creation_time)``, so a re-run checks a file without a query."""
        rows = self.con.execute(
            """SELECT f.path, f.size, f.mtime_ns, v.video_id, v.duration, v.width, v.height, v.fps, v.codec, v.creation_time
               FROM files f JOIN videos v USING (video_id)"""
        ).fetchall()
        return {r[0]: r[1:] for r in rows}

    def record_file(self, path: str, size: int | None, mtime_ns: int | None, video_id: str | None, status: str, error: str | None = None) -> None:
        row = (path, size, mtime_ns, video_id, status, error)
        if self._buffer is not None:
            self._buffer["files"][path] = row  # the last word on a path wins, as with single upserts
            return
        self.con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, now())", list(row))

    def upsert_video(self, video_id: str, info: dict[str, Any], size: int) -> None:
        row = (video_id, info["path"], size, info["duration"], info["width"], info["height"], info.get("fps"),
               info.get("codec"), info.get("creation_time"))
        if self._buffer is not None:
            self._buffer["videos"][video_id] = row
            return
        self.con.execute(
            """INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())
               ON CONFLICT (video_id) DO UPDATE SET path = excluded.path, last_seen = now()""",
            list(row),
        )

    def register_model(self, model_id: str, name: str, dim: int, info: dict | None = None) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, now())",
            [model_id, model_slug(model_id), name, dim, json.dumps(info or {})],
        )

    def mark_pending(self, specs: Iterable[ChunkSpec]) -> None:
        rows = [(s.chunk_id, s.video_id, s.model_id, s.start, s.end, s.sampling) for s in specs]
        if rows:
            self.con.executemany(
                """INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, NULL, now())
                   ON CONFLICT (chunk_id) DO NOTHING""",
                rows,
            )

    def unsettled_specs(self) -> list[ChunkSpec]:
        """Chunks the catalog does not have as done (pending, or failed and perhaps retried since):
        the only ones whose markers can have changed behind its back."""
        rows = self.con.execute(
            """SELECT c.video_id, coalesce(v.path, ''), c.start_s, c.end_s, c.sampling, c.model_id
               FROM chunks c LEFT JOIN videos v USING (video_id) WHERE c.status <> 'done'"""
        ).fetchall()
        return [ChunkSpec(*r) for r in rows]

    def done_chunk_ids(self, video_ids: Iterable[str]) -> set[str]:
        """Chunks of these videos that the catalog has as done."""
        import pyarrow as pa

        with self._registered("_vids", pa.table({"video_id": pa.array(list(video_ids), pa.string())})):
            return {c for (c,) in self.con.execute(
                "SELECT chunk_id FROM chunks JOIN _vids USING (video_id) WHERE status = 'done'").fetchall()}

    def settle_files(self, videos: dict[str, str], model_ids: Iterable[str]) -> None:
        """Set each file's status from its video's chunks of ``model_ids``, in one statement:
        pending while a chunk is, else indexed, partial (some failed) or failed (all failed);
        ``videos``: video_id -> path."""
        import pyarrow as pa

        if not videos:
            return
        with self._registered("_settle", pa.table({"video_id": list(videos), "path": list(videos.values())})):
            self.con.execute(
                """UPDATE files SET status = s.state, error = s.err, updated_at = now()
                   FROM (SELECT v.path,
                                CASE WHEN coalesce(c.pending, 0) > 0 THEN 'pending'
                                     WHEN coalesce(c.failed, 0) = 0 THEN 'indexed'
                                     WHEN c.done > 0 THEN 'partial' ELSE 'failed' END AS state,
                                c.err
                         FROM _settle v LEFT JOIN (
                             SELECT video_id, count(*) FILTER (WHERE status = 'done') AS done,
                                    count(*) FILTER (WHERE status = 'failed') AS failed,
                                    count(*) FILTER (WHERE status = 'pending') AS pending,
                                    any_value(error) FILTER (WHERE status = 'failed') AS err
                             FROM chunks WHERE list_contains(?, model_id) GROUP BY video_id
                         ) c USING (video_id)) s
                   WHERE files.path = s.path""",
                [list(model_ids)],
            )

    def video_paths(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT video_id, path FROM videos").fetchall())

    # -- sync from shards -----------------------------------------------------------------
    def sync(self, specs: Iterable[ChunkSpec] | None = None) -> dict[str, int]:
        """Refresh ``chunks`` from the markers on disk and (re)create the frames views.

        ``specs``: read only these chunks' markers (an ingest's own chunks; a chunk without a
        marker yet keeps its row); None: every marker of the index (a full rebuild).
        """
        import pyarrow as pa

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
            )
        counts = {"done": 0, "failed": 0}
        if rows:
            cols = list(zip(*rows.values()))
            names = ["chunk_id", "video_id", "model_id", "start_s", "end_s", "sampling", "status", "frames", "shard", "error"]
            with self._registered("_markers", pa.table({n: list(c) for n, c in zip(names, cols)})):
                self.con.execute(
                    """INSERT OR REPLACE INTO chunks
                       SELECT chunk_id, video_id, model_id, start_s, end_s, sampling, status, frames::INTEGER, shard, error, now()
                       FROM _markers"""
                )
            for r in rows.values():
                counts[r[6]] += 1
        self.refresh_views()
        return counts

    def refresh_views(self) -> None:
        """One ``frames_<model>`` view per model over its shards; ``frames`` is the most recently used model;
        ``frame_text`` over the OCR channel's shards."""
        models = self.con.execute("SELECT model_id, slug, dim FROM models ORDER BY last_used DESC").fetchall()
        have = set(self.store.model_slugs())
        latest = None
        for model_id, slug, dim in models:
            if slug not in have or not any(Path(self.store.shards_root / slug).glob("*/*/*.parquet")):
                continue
            glob = self.store.shard_glob(slug).replace("'", "''")
            # the explicit FLOAT[dim] makes array_cosine_similarity work in every DuckDB version
            self.con.execute(
                f"CREATE OR REPLACE VIEW frames_{slug} AS SELECT video_id, path, chunk_id, pts, model_id, "
                f"embedding::FLOAT[{int(dim)}] AS embedding FROM read_parquet('{glob}')"
            )
            latest = latest or slug
        if latest:
            self.con.execute(f"CREATE OR REPLACE VIEW frames AS SELECT * FROM frames_{latest}")
        else:
            self.con.execute(
                "CREATE OR REPLACE VIEW frames AS SELECT NULL::VARCHAR AS video_id, NULL::VARCHAR AS path, "
                "NULL::VARCHAR AS chunk_id, NULL::DOUBLE AS pts, NULL::VARCHAR AS model_id, "
                "NULL::FLOAT[] AS embedding WHERE false"
            )
        self._refresh_text_view()

    def _refresh_text_view(self) -> None:
        """``frame_text``: the on-screen text read by the OCR channel (empty when there is none)."""
        from vidsearch.ocr.channel import OCR_CHANNEL, TEXT_DIM

        slug = model_slug(OCR_CHANNEL)
        if any(Path(self.store.shards_root / slug).glob("*/*/*.parquet")):
            glob = self.store.shard_glob(slug).replace("'", "''")
            self.con.execute(
                "CREATE OR REPLACE VIEW frame_text AS SELECT video_id, path, pts, text, confidence, "
                "x0, y0, x1, y1, [x0, y0, x1, y1]::FLOAT[4] AS box, chunk_id, model_id, "
                f"text_embedding::FLOAT[{TEXT_DIM}] AS text_embedding FROM read_parquet('{glob}')"
            )
        else:
            self.con.execute(
                "CREATE OR REPLACE VIEW frame_text AS SELECT NULL::VARCHAR AS video_id, NULL::VARCHAR AS path, "
                "NULL::DOUBLE AS pts, NULL::VARCHAR AS text, NULL::FLOAT AS confidence, NULL::FLOAT AS x0, "
                "NULL::FLOAT AS y0, NULL::FLOAT AS x1, NULL::FLOAT AS y1, NULL::FLOAT[4] AS box, "
                "NULL::VARCHAR AS chunk_id, NULL::VARCHAR AS model_id, "
                f"NULL::FLOAT[{TEXT_DIM}] AS text_embedding WHERE false"
            )

    # -- reporting -------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        q = self.con.execute
        videos, hours = q(
            """SELECT count(*), coalesce(sum(duration), 0) / 3600 FROM videos
               WHERE video_id IN (SELECT video_id FROM chunks WHERE status = 'done')"""
        ).fetchone()
        frames, ocr_frames = q(
            """SELECT coalesce(sum(frames) FILTER (WHERE model_id NOT LIKE 'ocr:%'), 0),
                      coalesce(sum(frames) FILTER (WHERE model_id LIKE 'ocr:%'), 0)
               FROM chunks WHERE status = 'done'"""
        ).fetchone()
        by_status = dict(q("SELECT status, count(*) FROM chunks GROUP BY status").fetchall())
        failed_files = [
            {"path": p, "error": e}
            for p, e in q("SELECT path, error FROM files WHERE status = 'failed' ORDER BY path").fetchall()
        ]
        failed_chunks = [
            {"path": p, "start": s, "end": e, "error": err}
            for p, s, e, err in q(
                """SELECT v.path, c.start_s, c.end_s, c.error FROM chunks c LEFT JOIN videos v USING (video_id)
                   WHERE c.status = 'failed' ORDER BY v.path, c.start_s"""
            ).fetchall()
        ]
        models = [
            {"model_id": m, "name": n, "dim": d, "frames": f or 0}
            for m, n, d, f in q(
                """SELECT m.model_id, m.name, m.dim, sum(c.frames) FROM models m
                   LEFT JOIN chunks c ON c.model_id = m.model_id AND c.status = 'done'
                   GROUP BY ALL ORDER BY m.model_id"""
            ).fetchall()
        ]
        per_video = [
            {"path": p, "duration": d, "done": dn, "pending": pe, "failed": fa}
            for p, d, dn, pe, fa in q(
                """SELECT v.path, v.duration,
                          count(*) FILTER (WHERE c.status = 'done'),
                          count(*) FILTER (WHERE c.status = 'pending'),
                          count(*) FILTER (WHERE c.status = 'failed')
                   FROM videos v JOIN chunks c USING (video_id) GROUP BY ALL ORDER BY v.path"""
            ).fetchall()
        ]
        return {
            "index": str(self.store.root),
            "videos": videos,
            "hours": round(hours, 3),
            "frames": int(frames),
            "ocr_frames": int(ocr_frames),  # frames whose on-screen text was read (ingest --ocr)
            "chunks": {"done": by_status.get("done", 0), "pending": by_status.get("pending", 0), "failed": by_status.get("failed", 0)},
            "models": models,
            "failed_files": failed_files,
            "failed_chunks": failed_chunks,
            "per_video": per_video,
        }
