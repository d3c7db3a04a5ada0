"""What an index holds, for ``vidsearch status``: synced from the chunk markers first."""
from __future__ import annotations

from typing import Any

from vidsearch.errors import IndexError_
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import CHANNELS, sync_catalog


def index_status(store: IndexStore, rebuild: bool = False) -> dict[str, Any]:
    """The catalog's summary after a sync. Workers may have finished (or retried) chunks since the
    last look: the chunks not yet done are looked at again; ``rebuild``, or a catalog that knows no
    chunk at all (deleted, or shards copied in), re-reads every marker."""
    if not store.exists():
        raise IndexError_(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
    with Catalog(store) as cat:
        full = rebuild or not cat.chunk_count()
        sync_catalog(cat, None if full else cat.unsettled_specs())
        return cat.summary(tuple(CHANNELS))


def read_status(store: IndexStore) -> dict[str, Any]:
    """The catalog's summary as it stands, read-only (no sync): while an ingest holds the catalog."""
    with Catalog(store, read_only=True) as cat:
        return cat.summary(tuple(CHANNELS))
