"""Capped resends of lost chunks, and the index-mismatch check of the waiting Celery submitter.

The waiting submitter sends again a chunk whose task left the broker without a marker it can
see (a broker restart can lose a task). A worker that writes into another index directory
than the submitter reads looks the same from the markers alone, so every task result names
the worker's host and the index it wrote (:func:`written_to`). When a chunk, already sent
again once, is reported done by its worker and its marker is still missing here, ingest stops
with one line naming the host, both paths and the fix; any chunk is sent again at most
``MAX_RESENDS`` times.
"""
from __future__ import annotations

import logging
import socket

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import UserError
from vidsearch.index.shards import IndexStore

log = logging.getLogger(__name__)

MAX_RESENDS = 3


def written_to(store: IndexStore) -> dict:
    """What a worker adds to its task result: its host and the index directory it wrote into."""
    return {"index": str(store.root), "host": socket.gethostname()}


def claimed_done(result) -> bool:
    return isinstance(result, dict) and result.get("status") in ("done", "skipped") and bool(result.get("index"))


def mismatch_message(spec: ChunkSpec, result: dict, store: IndexStore) -> str:
    return (
        f"worker {result.get('host', '?')} wrote {spec.path} [{spec.start:.0f}-{spec.end:.0f}s] into "
        f"{result['index']} but this ingest reads {store.root}: set VIDSEARCH_INDEX on that worker to "
        f"its path to {store.root} (or unset it) and run the ingest again"
    )


class ResendGuard:
    """Counts how often each chunk was sent again; raises :class:`UserError` instead of looping."""

    def __init__(self, app, max_resends: int = MAX_RESENDS):
        self.app = app
        self.max_resends = max_resends
        self.resent: dict[str, int] = {}

    def result(self, task_id: str | None) -> dict | None:
        """A finished task's result (None when unknown, not finished or unreadable)."""
        if not task_id:
            return None
        try:
            res = self.app.AsyncResult(task_id)
            return res.result if res.state == "SUCCESS" and isinstance(res.result, dict) else None
        except Exception:  # noqa: BLE001 - result backend away: decide on the markers alone
            log.debug("result of %s unreadable", task_id, exc_info=True)
            return None

    def admit(self, lost: list[ChunkSpec], task_ids: dict[str, str], store: IndexStore) -> list[ChunkSpec]:
        """The chunks to send again; raise when one was done elsewhere or was sent too often."""
        for spec in lost:
            times = self.resent.get(spec.chunk_id, 0)
            result = self.result(task_ids.get(spec.chunk_id))
            if times and claimed_done(result) and not store.marker_path(spec).exists():
                raise UserError(mismatch_message(spec, result, store))
            if times >= self.max_resends:
                raise UserError(
                    f"{spec.path} [{spec.start:.0f}-{spec.end:.0f}s] was sent {times + 1} times and each task left "
                    f"the broker without a marker in {store.root}; check the workers' logs and their "
                    "VIDSEARCH_INDEX, then run the ingest again"
                )
        for spec in lost:
            self.resent[spec.chunk_id] = self.resent.get(spec.chunk_id, 0) + 1
        return lost
