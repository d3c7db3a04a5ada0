"""What an index holds, for ``vidsearch status``: synced from the chunk markers first."""
from __future__ import annotations

from typing import Any

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import IndexUnusableError, StorageError, disk_faults
from vidsearch.index.catalog import Catalog
from vidsearch.index.lock import writer_lock
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import CHANNELS, sync_catalog


def index_status(store: IndexStore, rebuild: bool = False, verify: bool = False) -> dict[str, Any]:
    """The catalog's summary after a sync. Workers may have finished (or retried) chunks since the
    last look: the chunks not yet done are looked at again; ``rebuild``, or a catalog that knows no
    chunk at all (deleted, or shards copied in), re-reads every marker. ``verify``: every done
    shard is checked in full first (:func:`verify_shards`); the summary gets ``verified``."""
    if not store.exists():
        raise IndexUnusableError(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
    verified = None
    if verify:
        with writer_lock(store.root, "vidsearch status --verify"):  # it rewrites markers: not during an ingest
            verified = verify_shards(store)
    try:
        with disk_faults(store.catalog_path), Catalog(store) as cat:
            full = rebuild or not cat.chunk_count()
            specs = None if full else cat.unsettled_specs()
            if verified and specs is not None:
                specs += [ChunkSpec.from_dict(d) for d in verified["damaged"]]
            sync_catalog(cat, specs)
            summary = cat.summary(tuple(CHANNELS))
    except StorageError as e:  # a full or read-only disk: what the catalog last recorded, said so
        if verified:
            raise
        with Catalog(store, read_only=True) as cat:
            summary = {**cat.summary(tuple(CHANNELS)), "not_synced": str(e)}
    aside = store.detached_videos()
    if aside:
        summary["detached"] = {"videos": len(aside), "chunks": sum(aside.values())}
    if verified is not None:
        summary["verified"] = {"shards": verified["shards"],
                               "damaged": [{k: d[k] for k in ("path", "start", "end", "model_id", "error")} for d in verified["damaged"]]}
    return summary


def verify_shards(store: IndexStore) -> dict[str, Any]:
    """Check every done shard against its marker (size, rows, SHA-256); a damaged one is marked
    for redoing (:meth:`IndexStore.quarantine`): the next ingest re-indexes its chunk.
    Returns ``{"shards": checked, "damaged": [marker + "error", ...]}``."""
    checked, damaged = 0, []
    for rec, problem in store.verify():
        checked += 1
        if problem:
            damaged.append({**rec, "error": store.quarantine(rec, problem)})
    return {"shards": checked, "damaged": damaged}


def read_status(store: IndexStore) -> dict[str, Any]:
    """The catalog's summary as it stands, read-only (no sync): while an ingest holds the catalog."""
    with Catalog(store, read_only=True) as cat:
        return cat.summary(tuple(CHANNELS))
