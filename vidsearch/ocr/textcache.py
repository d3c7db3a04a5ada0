"""The query-side copy of the OCR channel: one Arrow file per video instead of one shard per chunk.

A ``--text-in-frame`` query needs every recognised line and every frame read. Read from the
shards that means one Parquet file and one ``.done`` marker per chunk (60 per hour of video at
the default chunk length); this cache holds one file per video::

    <index>/matrix/<OCR channel slug>/
        manifest.json      {"format": 1, "dirs": {"<vid[:2]>/<vid>": shard directory mtime_ns or null}}
        <vid>.arrow        the video's lines (Arrow IPC, uncompressed, memory-mapped when read); its
                           schema metadata ``vidsearch.sampled`` lists the times of every frame read
        .lock              one writer at a time

Freshness works as for the search matrix (:mod:`vidsearch.index.matrix`): writing or removing a shard or
marker changes its video directory's mtime, so a query stats the video directories and rebuilds
the files of those that changed (a directory modified within ``RACY_NS`` of the scan is recorded
as unknown and looked at again next time). A file is written to a temporary name and renamed;
the manifest is written last. The shards stay the source of truth (and the ``frame_text`` view
reads them); this directory can be deleted at any time. Where the index cannot be written (a
read-only mount), the copy is kept in the user's temp space instead (:func:`fallback_dir`).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path

from vidsearch.errors import first_line
from vidsearch.index.matrix import MATRIX, dir_lock, record_dirs, scan_video_dirs
from vidsearch.index.shards import (IndexStore, is_done_marker, model_slug, read_marker, remove_leftover_temps,
                                    replacing, shard_problem, write_json_atomic)
from vidsearch.ocr.schema import text_schema

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
SAMPLED_KEY = b"vidsearch.sampled"
#: the shard columns a query reads (video_id is the file's)
COLUMNS = ["pts", "text", "confidence", "x0", "y0", "x1", "y1", "text_embedding"]


def cache_dir(store: IndexStore, channel: str) -> Path:
    return store.root / MATRIX / model_slug(channel)


def fallback_dir(store: IndexStore, channel: str) -> Path:
    """Where the copy goes when the index directory cannot be written (a read-only mount): a
    directory of this user's temp space named after the index."""
    import hashlib
    import tempfile

    key = hashlib.sha256(str(store.root).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"vidsearch-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / key / model_slug(channel)


def refresh(store: IndexStore, channel: str) -> dict[str, Path]:
    """Bring the per-video files up to date with the channel's done shards: ``{video_id: file}``.

    In the index's ``matrix/`` directory, or, where the index cannot be written, in
    :func:`fallback_dir`."""
    try:
        return _refresh(store, channel, cache_dir(store, channel))
    except OSError as e:
        if not isinstance(e, PermissionError) and e.errno not in (errno.EROFS, errno.EACCES):
            raise
        log.info("on-screen text cache not writable (%s): keeping it in %s", e, fallback_dir(store, channel))
    return _refresh(store, channel, fallback_dir(store, channel))


def _refresh(store: IndexStore, channel: str, d: Path) -> dict[str, Path]:
    base = store.shards_root / model_slug(channel)
    manifest = _read_manifest(d)
    dirs = scan_video_dirs(base)
    files = {rel.rsplit("/", 1)[1]: d / f"{rel.rsplit('/', 1)[1]}.arrow" for rel in dirs}
    if manifest is not None and manifest.get("dirs") == dirs and all(p.exists() for p in files.values()):
        return files
    with dir_lock(d):
        manifest = _read_manifest(d) or {}
        scan_start = time.time_ns()
        dirs = scan_video_dirs(base)
        recorded = manifest.get("dirs") or {}
        files = {}
        for rel, mtime in sorted(dirs.items()):
            vid = rel.rsplit("/", 1)[1]
            path = d / f"{vid}.arrow"
            if recorded.get(rel) != mtime or not path.exists():
                _build(base / rel, path)
            files[vid] = path
        for p in d.glob("*.arrow"):  # videos whose shards are gone
            if p.stem not in files:
                p.unlink(missing_ok=True)
        remove_leftover_temps(d, os.listdir(d))  # of a refresh killed mid-write (one listing for every file)
        write_json_atomic(d / MANIFEST, {"format": FORMAT, "channel": channel, "dirs": record_dirs(dirs, scan_start)},
                           indent=None, separators=(",", ":"))
    return files


def _read_manifest(d: Path) -> dict | None:
    try:
        m = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def _build(video_dir: Path, out: Path) -> None:
    """One video's done shards and the frames they read, as one Arrow file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = text_schema().remove(text_schema().get_field_index("video_id"))
    schema = pa.schema([schema.field(c) for c in COLUMNS])
    tables, sampled = [], []
    try:
        entries = sorted(e.name for e in os.scandir(video_dir))
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    for name in entries:
        if not is_done_marker(name):
            continue
        marker = read_marker(video_dir / name)
        try:
            if marker is None:
                raise ValueError("unreadable marker")
            with pa.memory_map(str(video_dir / marker["shard"])) as src:
                data = src.read_buffer()
                problem = shard_problem(video_dir / marker["shard"], marker, data=data)
                if problem:
                    raise ValueError(f"damaged shard: {problem}; `vidsearch status --verify` marks it for re-indexing")
                t = pq.ParquetFile(pa.BufferReader(data)).read(columns=COLUMNS, use_threads=False)
        except (OSError, ValueError, KeyError) as e:
            # a damaged shard, or a marker without a readable one: left out (looked at again when its directory changes)
            log.warning("on-screen text cache: skipping %s (%s)", video_dir / name, first_line(e))
            continue
        sampled.extend(float(x) for x in marker.get("sampled") or [])
        tables.append(t.cast(schema))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = table.replace_schema_metadata({SAMPLED_KEY: json.dumps(sorted(set(sampled))).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out, sweep=False) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read(path: Path, columns: list[str]):
    """``(table, sampled times)`` of one video's file (memory-mapped: only what is used is read)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_file(src).read_all()
    sampled = json.loads((table.schema.metadata or {}).get(SAMPLED_KEY, b"[]"))
    return table.select(columns), sampled
