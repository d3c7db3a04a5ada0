"""The Celery app that embedding nodes run: ``celery -A workers.app worker -Q embed --concurrency 1``.

Configuration (environment, read once into :data:`SETTINGS`; see :class:`vidsearch.settings.Settings`):

``VIDSEARCH_BROKER_URL``
    the broker, e.g. ``redis://broker:6379/0`` (required).
``VIDSEARCH_INDEX``
    this node's path to the shared index directory; when unset, the path the submitter sent.
``VIDSEARCH_MODEL``
    optional model name or directory; otherwise the installed model whose id the task names.
``VIDSEARCH_PROVIDERS``, ``VIDSEARCH_THREADS``, ``VIDSEARCH_VISIBILITY_TIMEOUT``
    as for the rest of vidsearch.

The task is thin: it resolves the chunk's index directory (and its model, for a channel that needs
one) and calls :func:`vidsearch.ingest.channels.process_chunk`. Bad input is
recorded (``.failed``) and not retried; I/O trouble is retried with exponential backoff.
One ONNX Runtime session per worker process, created by its first chunk.
"""
from __future__ import annotations

import logging
import os
import socket

from celery.exceptions import SoftTimeLimitExceeded

from vidsearch.ingest import leases, quietlogs
from vidsearch.ingest.resends import written_to
from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import ModelError, TransientError, UserError, one_line
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.celery import TASK_NAME, broker_url, crash_guard, make_celery, task_result, visibility_timeout
from vidsearch.ingest.channels import channel_for, process_chunk
from vidsearch.settings import Settings, activate

log = logging.getLogger("vidsearch.worker")

#: this worker process's settings, read once (see vidsearch.settings.Settings)
SETTINGS = activate(Settings.load())

app = make_celery(broker_url())
leases.attach(app)  # every worker process requeues the chunks of dead workers (lease reaper)
quietlogs.install()  # broker restarts: one log line per connection error, no traceback

MAX_RETRIES = 5
#: A chunk whose worker process died this many times while embedding it is recorded as failed
#: (a poison chunk: out of memory, a decoder crash) instead of being redelivered forever.
MAX_CRASHES = int(SETTINGS.max_crashes)

_encoders: dict[str, object] = {}  # model id -> Encoder, one per worker process


def resolve_model(model_id: str):
    """This node's copy of the model the chunk was planned with (matched by content id)."""
    from vidsearch.models.installed import installed_model

    try:
        return installed_model(model_id, SETTINGS.model, strict=False,
                               hint="copy the submitter's model directory there and re-run the ingest")
    except ModelError as e:
        raise ModelError(f"worker {socket.gethostname()}: {e}") from None


def get_encoder(model_id: str):
    enc = _encoders.get(model_id)
    if enc is None:
        from vidsearch.models.encoder import Encoder

        enc = Encoder(resolve_model(model_id))
        _encoders[model_id] = enc
        log.info("model %s loaded in process %d", model_id, os.getpid())
    return enc


def resolve_index(task_root: str) -> IndexStore:
    root = SETTINGS.index or task_root
    store = IndexStore(root)
    if not store.root.is_dir():
        raise TransientError(
            f"index directory {store.root} does not exist on worker {socket.gethostname()} "
            "(is the shared directory mounted? set VIDSEARCH_INDEX to its path on this node)"
        )
    return store


def _backoff(retries: int) -> float:
    # below the visibility timeout: a task waiting for its retry is held unacknowledged
    return min(2.0 ** (retries + 1), 60.0, visibility_timeout() / 4)


def _failed(store: IndexStore | None, spec: ChunkSpec, message: str) -> dict:
    if store is not None:
        try:
            store.write_failed(spec, message)
        except OSError:
            log.exception("cannot record the failure of %s", spec.chunk_id)
    log.warning("chunk failed: %s", message)
    return task_result("failed", spec, error=message)


@app.task(name=TASK_NAME, bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def embed_chunk_task(self, spec_dict: dict, index_root: str, batch_size: int = 32) -> dict:
    result = embed_chunk(self, spec_dict, index_root, batch_size)  # a retry raises: the task goes on
    leases.task_ended(self.request.id)  # off the broker's list of sent tasks (before the ack)
    return result


def embed_chunk(self, spec_dict: dict, index_root: str, batch_size: int) -> dict:
    """The task's work: the chunk's result, or :class:`celery.exceptions.Retry` raised."""
    spec = ChunkSpec.from_dict(spec_dict)
    store: IndexStore | None = None
    try:
        store = resolve_index(index_root)
        if store.is_done(spec):  # a redelivery or a re-submission: nothing to do
            return task_result("skipped", spec, **written_to(store))
        with leases.hold_lease(self.request, spec, store, index_root), crash_guard(store, spec, MAX_CRASHES):
            if not os.path.exists(spec.path):
                raise TransientError(
                    f"{spec.path}: not found on worker {socket.gethostname()} "
                    "(mount the archive at the same path as on the submitting machine)"
                )
            encoder = get_encoder(spec.model_id) if channel_for(spec.model_id).needs_encoder else None
            marker = process_chunk(spec, encoder, store, batch_size)
        return task_result("done", spec, frames=int(marker.get("frames", 0)), seconds=marker.get("seconds"), **written_to(store))
    except UserError as e:  # corrupt video, missing model: recorded, not retried
        msg = str(e)
        return _failed(store, spec, msg if msg.startswith(spec.path) else f"{spec.path}: {msg}")
    except SoftTimeLimitExceeded:
        return _failed(store, spec, f"{spec.path}: chunk [{spec.start:.0f}-{spec.end:.0f}s] took longer than "
                                    f"{visibility_timeout() * 0.8:.0f}s; use a shorter --chunk or raise VIDSEARCH_VISIBILITY_TIMEOUT")
    except (OSError, TransientError) as e:
        if self.request.retries >= MAX_RETRIES:
            return _failed(store, spec, f"{spec.path}: gave up after {MAX_RETRIES} retries: {one_line(e)}")
        log.warning("chunk %s: %s; retrying", spec.chunk_id, one_line(e))
        raise self.retry(exc=e, countdown=_backoff(self.request.retries))
    except Exception as e:  # noqa: BLE001 - a bug must not stall the queue: record it
        log.exception("chunk %s failed", spec.chunk_id)
        return _failed(store, spec, f"{spec.path}: {one_line(e)}")
