"""Ingest orchestration: plan (:mod:`vidsearch.ingest.plan`) -> run the chunks on a backend
(:mod:`vidsearch.ingest.local`, :mod:`vidsearch.ingest.celery`) -> finish (catalog, query-side copies).

Every chunk belongs to a channel (:mod:`vidsearch.ingest.channels`); this module names none.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Protocol, Sequence

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import disk_faults, one_line
from vidsearch.index.catalog import Catalog
from vidsearch.index.lock import writer_lock
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import sync_catalog
from vidsearch.ingest.forget import drop_videos, refresh_channels
from vidsearch.ingest.plan import IngestOptions, IngestPlan, prepare
from vidsearch.ingest.report import IngestReport, count_files
from vidsearch.models.contract import ModelInfo

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def run(self, plan: IngestPlan, store: IndexStore, report: IngestReport, progress: Callable[[ChunkSpec, dict | None], None]) -> None: ...


def finish(store: IndexStore, plan: IngestPlan, report: IngestReport, complete: bool = True) -> None:
    """Refresh the catalog from the shards and settle each file's status.

    Chunks of these videos done earlier with other settings (sampling, chunk length) are
    removed only once the new plan has completely run (``complete``), so an interrupted
    re-index never leaves a video with fewer frames than before. So is the content that no file
    holds any more because another was identified at its path (a file replaced): its frames would
    be shown and cut from the new file. It is set aside, not deleted (:mod:`vidsearch.ingest.forget`).
    """
    settled = complete and not report.pending
    remove_stale = settled and bool(plan.stale)
    if remove_stale:
        for rec in plan.stale:
            store.remove_chunk(ChunkSpec.from_dict(rec))
    with Catalog(store) as cat:
        if remove_stale:
            cat.forget_chunks(r["chunk_id"] for r in plan.stale)
        dropped_models: set[str] = set()
        if settled:  # content no scanned file holds any more (its file was replaced): out of the index
            dropped, dropped_models = drop_videos(store, cat, cat.orphaned_videos(), set_aside=True)
            report.replaced = [d for d in dropped if d["chunks"]]  # content with nothing indexed goes unsaid
        sync_catalog(cat, [*plan.todo, *plan.unsynced])  # the markers this run (or a killed one) wrote, not the whole index
        cat.settle_files(plan.videos, plan.model_ids)
        count_files(report, cat.file_gaps(plan.videos, plan.model_ids), {f.path for f in plan.failures if f.start is None})
    if complete and report.model_id:
        # bring the query-side copies up to date now (only what changed) so the next query does not pay
        refresh_channels(store, [*plan.model_ids, *dropped_models])


def ingest(
    roots: Sequence[str | os.PathLike],
    store: IndexStore,
    model: ModelInfo,
    backend: Backend,
    options: IngestOptions | None = None,
    progress: Callable[[ChunkSpec, dict | None], None] | None = None,
    on_plan: Callable[[IngestPlan], None] | None = None,
) -> IngestReport:
    with writer_lock(store.root, "vidsearch ingest"):  # one writer per index: a second ingest stops, naming this one
        return _ingest(roots, store, model, backend, options or IngestOptions(), progress, on_plan)


def _ingest(roots, store: IndexStore, model: ModelInfo, backend: Backend, options: IngestOptions,
            progress, on_plan) -> IngestReport:
    t0 = time.perf_counter()
    with disk_faults(store.catalog_path):  # a full or read-only disk under the catalog: one line
        plan = prepare(store, roots, model, options)
    report = IngestReport(
        files_seen=plan.files_seen, videos=len(plan.videos), chunks_skipped=plan.skipped,
        failures=list(plan.failures), model_id=model.model_id, backend=backend.name,
    )
    if on_plan:
        on_plan(plan)
    try:
        backend.run(plan, store, report, progress or (lambda spec, marker: None))
    except BaseException:
        # Even on Ctrl-C or a full disk: what was written is marked; make the catalog reflect it
        # if it still can (the next run does otherwise). The first error is the one reported.
        try:
            finish(store, plan, report, complete=False)
        except Exception as e:  # noqa: BLE001
            log.debug("catalog not updated after the error (%s); the next run records the chunks", one_line(e))
        raise
    complete = report.chunks_done + report.chunks_failed + report.pending >= len(plan.todo)
    with disk_faults(store.root):
        finish(store, plan, report, complete=complete)
    report.wall_s = round(time.perf_counter() - t0, 3)
    return report
