"""Parquet shards + DuckDB catalog adapter.

Index directory layout::

    catalog.duckdb                               DuckDB catalog (files, videos, chunks, frames views)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.parquet   one shard per chunk: the embeddings
    shards/<model>/<vid[:2]>/<vid>/<chunk>.done      marker, written after the shard (JSON)
    shards/<model>/<vid[:2]>/<vid>/<chunk>.failed    why the chunk failed (JSON), if it did

A shard is written to a temporary name and renamed into place; only then is its ``.done``
marker written. A chunk is done exactly when its marker exists, so an interrupted ingest
loses nothing that was marked, and a re-run (or a redelivered Celery task) overwrites the
same shard name instead of adding rows. The shards are the source of truth; the catalog is
refreshed from them (:meth:`Catalog.sync`) and can always be rebuilt.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import IndexError_
from .plan import ChunkSpec

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


class IndexStore:
    """The shard side of an index directory (safe to use from many processes and machines)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().absolute()
        self.shards_root = self.root / SHARDS
        self.catalog_path = self.root / CATALOG

    # -- paths -----------------------------------------------------------------------------
    def chunk_dir(self, spec: ChunkSpec) -> Path:
        return self.shards_root / model_slug(spec.model_id) / spec.video_id[:2] / spec.video_id

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
                        try:
                            with open(entry.path) as f:
                                rec = json.load(f)
                        except (OSError, json.JSONDecodeError):
                            continue
                        rec["_dir"] = vid.path
                        yield kind, rec

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


_DDL = (Path(__file__).parent / "data" / "catalog.sql").read_text()


class Catalog:
    """The DuckDB catalog. Open it briefly (``with store.catalog() as cat:``): DuckDB allows one writer."""

    def __init__(self, store: IndexStore, read_only: bool = False):
        import duckdb

        self.store = store
        self.read_only = read_only
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

    # -- files and videos -----------------------------------------------------------------
    def cached_video_id(self, path: str, size: int, mtime_ns: int) -> str | None:
        row = self.con.execute(
            "SELECT video_id FROM files WHERE path = ? AND size = ? AND mtime_ns = ? AND video_id IS NOT NULL",
            [path, size, mtime_ns],
        ).fetchone()
        return row[0] if row else None

    def record_file(self, path: str, size: int | None, mtime_ns: int | None, video_id: str | None, status: str, error: str | None = None) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, now())",
            [path, size, mtime_ns, video_id, status, error],
        )

    def upsert_video(self, video_id: str, info: dict[str, Any], size: int) -> None:
        self.con.execute(
            """INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())
               ON CONFLICT (video_id) DO UPDATE SET path = excluded.path, last_seen = now()""",
            [video_id, info["path"], size, info["duration"], info["width"], info["height"], info.get("fps"),
             info.get("codec"), info.get("creation_time")],
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

    def video_paths(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT video_id, path FROM videos").fetchall())

    # -- sync from shards -----------------------------------------------------------------
    def sync(self) -> dict[str, int]:
        """Refresh ``chunks`` from the markers on disk and (re)create the frames views."""
        import pyarrow as pa

        rows: dict[str, tuple] = {}
        for kind, r in self.store.iter_records():
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
            tbl = pa.table({n: list(c) for n, c in zip(names, cols)})
            self.con.register("_markers", tbl)
            self.con.execute(
                """INSERT OR REPLACE INTO chunks
                   SELECT chunk_id, video_id, model_id, start_s, end_s, sampling, status, frames::INTEGER, shard, error, now()
                   FROM _markers"""
            )
            self.con.unregister("_markers")
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
        from .ocr_channel import OCR_CHANNEL, TEXT_DIM

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
