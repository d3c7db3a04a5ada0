"""What a query needs from the catalog, kept as JSON beside the search matrices: no DuckDB on the query path.

Opening the DuckDB catalog costs a query ~70 ms (twice: the model pick and the video facts).
``<index>/matrix/catalog.json`` keeps the indexed models and each video's path, duration and
creation time, stamped with the catalog files' (size, mtime, inode). A reader stats the
catalog (microseconds) and uses the JSON while the stamp matches; otherwise it reads the
catalog once and rewrites the JSON. The stamp is taken before reading, so a catalog written
meanwhile only makes the next reader read it again; a catalog modified within ``RACY_NS`` of
the stamp is not trusted (a write in the same mtime tick could keep size and mtime: git's
"racy" rule), so the JSON is written without a stamp and read again next time.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from vidsearch.index.shards import IndexStore, write_json_atomic

META = "catalog.json"
FORMAT = 1
RACY_NS = 2_000_000_000


@dataclasses.dataclass
class IndexMeta:
    models: list[tuple[str, str]]  # (model_id, name) with done chunks
    videos: dict[str, tuple[str | None, float | None, str | None]]  # video_id -> (path, duration, creation_time)


def meta_path(store: IndexStore) -> Path:
    return store.root / "matrix" / META  # vidsearch.index.matrix.MATRIX (which imports this module)


def catalog_stamp(store: IndexStore) -> list | None:
    """(size, mtime_ns, inode) of the catalog and of its write-ahead log; None without a catalog."""
    out = []
    for p in (store.catalog_path, store.catalog_path.with_name(store.catalog_path.name + ".wal")):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if p == store.catalog_path:
                return None
            out.append(None)
            continue
        out.append([st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def _from_catalog(store: IndexStore) -> IndexMeta:
    from vidsearch.index.catalog import Catalog

    with Catalog(store, read_only=True) as cat:
        models = [(str(m), str(n)) for m, n in cat.indexed_models()]
        videos = {v: (p, d, c) for v, p, d, c in cat.video_meta()}
    return IndexMeta(models, videos)


def _cached(store: IndexStore, stamp: list) -> IndexMeta | None:
    try:
        data = json.loads(meta_path(store).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("stamp") != stamp:
        return None
    return IndexMeta([tuple(m) for m in data["models"]], {v: tuple(x) for v, x in data["videos"].items()})


def write_meta(store: IndexStore, meta: IndexMeta | None = None, stamp: list | None = None) -> IndexMeta | None:
    """Read the catalog and write ``catalog.json`` (what :func:`vidsearch.index.matrix.refresh` does after an ingest)."""
    stamp = catalog_stamp(store) if stamp is None else stamp
    if stamp is None:
        return None
    meta = meta if meta is not None else _from_catalog(store)
    if any(s and s[1] >= time.time_ns() - RACY_NS for s in stamp):
        stamp = None  # too recent to tell a later write apart: read the catalog again next time
    path = meta_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"format": FORMAT, "stamp": stamp, "models": meta.models,
                             "videos": {v: list(x) for v, x in meta.videos.items()}}, indent=None, separators=(",", ":"))
    return meta


def read_meta(store: IndexStore) -> IndexMeta | None:
    """The catalog's models and video facts (None without a catalog), from the JSON while it is current."""
    stamp = catalog_stamp(store)
    if stamp is None:
        return None
    cached = _cached(store, stamp)
    if cached is not None:
        return cached
    meta = _from_catalog(store)
    with contextlib.suppress(OSError):  # a read-only index: answer anyway
        write_meta(store, meta, stamp)
    return meta
