"""Ingest stage 3, in this process: run the plan's chunks one by one (no server needed).

While a chunk runs, the next one's channel may start work that overlaps it (the image channel
decodes ahead, bounded by a queue)."""
from __future__ import annotations

import logging

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import UserError, one_line, storage_error
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import channel_for
from vidsearch.ingest.plan import Failure, IngestPlan
from vidsearch.ingest.report import IngestReport, count_chunk

log = logging.getLogger(__name__)


class LocalBackend:
    """In-process chunks: the embedded default."""

    name = "local"

    def __init__(self, encoder, batch_size: int = 32):
        self.encoder = encoder
        self.batch_size = batch_size

    def run(self, plan: IngestPlan, store: IndexStore, report: IngestReport, progress) -> None:
        report.providers = self.encoder.providers("image") if plan.todo else []
        ahead = None  # (spec, what its channel started for it)
        try:
            for i, spec in enumerate(plan.todo):
                started = ahead[1] if ahead and ahead[0] is spec else None
                # start the next chunk now: it overlaps this chunk's last batches (bounded queue)
                nxt = plan.todo[i + 1] if i + 1 < len(plan.todo) else None
                ahead = (nxt, self._start(nxt, store)) if nxt is not None else None
                self._run_one(spec, started, store, report, progress)
        finally:
            if ahead and ahead[1] is not None:
                ahead[1].close()

    def _encoder_for(self, spec: ChunkSpec):
        return self.encoder if channel_for(spec.model_id).needs_encoder else None

    def _start(self, spec: ChunkSpec, store: IndexStore):
        if store.is_done(spec):
            return None
        return channel_for(spec.model_id).start(spec, self._encoder_for(spec), self.batch_size)

    def _run_one(self, spec: ChunkSpec, started, store: IndexStore, report: IngestReport, progress) -> None:
        try:
            marker = channel_for(spec.model_id).process(spec, store, self._encoder_for(spec), self.batch_size, started=started)
        except UserError as e:
            report.chunks_failed += 1
            report.failures.append(Failure(spec.path, str(e), spec.start, spec.end))
            progress(spec, None)
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # an unexpected bug must not stop the batch: record it and go on
            fault = storage_error(e, store.chunk_dir(spec))
            if fault is not None:  # a full or read-only disk fails every chunk alike: stop, in one line
                raise fault from None
            log.debug("chunk %s failed", spec.chunk_id, exc_info=True)
            msg = f"{spec.path}: {one_line(e)}"
            store.write_failed(spec, msg)
            report.chunks_failed += 1
            report.failures.append(Failure(spec.path, msg, spec.start, spec.end))
            progress(spec, None)
            return
        count_chunk(report, spec, marker)
        progress(spec, marker)
