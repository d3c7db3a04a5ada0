"""Celery adapter: the app configuration shared by submitter and workers, and the Celery backend.

The submitter (:class:`CeleryBackend`) sends one task per chunk **by name**
(``vidsearch.embed_chunk``); it never imports ``onnxruntime`` nor the ``workers`` package.
A task carries only the chunk spec (path, fingerprint, time range, sampling, model id), the
index directory and the batch size. Workers (``workers/app.py``) write the chunk's shard and
``.done`` / ``.failed`` marker into the shared index directory; those markers are the source
of truth, so the submitter waits by watching them and the catalog is refreshed from them.

Delivery guarantees come from the configuration in :func:`make_celery`: JSON only, late acks,
requeue when a worker dies, one task reserved per process, and a Redis visibility timeout
longer than any chunk (an unacknowledged task is handed to another worker after it). A task
redelivered after a crash rewrites its own shard under the same name, so rows never double.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any, Callable, Iterator

from vidsearch.ingest.resends import ResendGuard
from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import TransientError, UserError, one_line
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore, read_marker
from vidsearch.ingest.plan import Failure, IngestPlan
from vidsearch.ingest.report import IngestReport, count_chunk
from vidsearch.settings import current

log = logging.getLogger(__name__)

TASK_NAME = "vidsearch.embed_chunk"
QUEUE = "embed"
#: Redis hash: task id -> its arguments, for every task sent and not yet ended. Redis pops a task
#: before it is recorded as delivered; a worker killed in between takes it with it, and the live
#: workers send such a task again from this list (vidsearch/ingest/leases.py).
TASKS_KEY = "vidsearch:tasks"
#: Seconds a task may stay unacknowledged before Redis hands it to another worker. It must be
#: longer than the slowest chunk (tasks are time-limited below it); a worker that dies mid-chunk
#: costs this long before its chunk is retried elsewhere.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
BROKER_HINT = "pass --broker or set VIDSEARCH_BROKER_URL (e.g. redis://HOST:6379/0)"


def broker_url(explicit: str | None = None) -> str:
    """The broker URL: ``explicit``, else ``$VIDSEARCH_BROKER_URL``, else ``broker_url`` in config.json."""
    from vidsearch.settings import configured_broker_url

    url = configured_broker_url(explicit)
    if not url:
        raise UserError(f"no Celery broker configured: {BROKER_HINT}")
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked (for messages)."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def visibility_timeout() -> float:
    raw = current().visibility_timeout or ""
    try:
        return float(raw) if raw else DEFAULT_VISIBILITY_TIMEOUT
    except ValueError:
        raise UserError(f"VIDSEARCH_VISIBILITY_TIMEOUT={raw!r} is not a number of seconds") from None


def make_celery(
    broker: str,
    result_backend: str | None = None,
    visibility_timeout_s: float | None = None,
    client: bool = False,
    name: str = "vidsearch",
):
    """A Celery app configured for exactly-once chunk results.

    ``result_backend`` defaults to the broker URL (Redis holds both). ``visibility_timeout_s``
    defaults to ``$VIDSEARCH_VISIBILITY_TIMEOUT`` or one hour. ``client=True`` configures the
    submitter side: connection attempts give up quickly instead of retrying forever.
    """
    from celery import Celery

    vt = float(visibility_timeout_s if visibility_timeout_s is not None else visibility_timeout())
    if vt < 5:
        raise UserError(f"visibility timeout {vt:g}s is too short: a chunk must finish within it")
    app = Celery(name, broker=broker, backend=result_backend or broker, set_as_current=False)
    app.conf.update(**_delivery_conf(vt), **_connection_conf(vt, client))
    return app


def _delivery_conf(vt: float) -> dict[str, Any]:
    """How tasks travel: JSON only, acknowledged after the chunk is written, time-limited below
    the visibility timeout ``vt``."""
    return dict(
        # JSON only: a task is a chunk spec, never a pickled object.
        accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        result_accept_content=["json"],
        # Acknowledge after the chunk is written; requeue when the worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # A task never outlives the visibility timeout, so Redis never redelivers a live one.
        task_soft_time_limit=vt * 0.8,
        task_time_limit=vt * 0.9,
        task_routes={TASK_NAME: {"queue": QUEUE}},
        task_default_queue=QUEUE,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 12, "interval_start": 0.5, "interval_step": 1, "interval_max": 5},
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )


def _connection_conf(vt: float, client: bool) -> dict[str, Any]:
    """Broker and result backend connections; ``client``: give up quickly instead of retrying forever."""
    # Redis scans for expired unacknowledged tasks every interval * throttle seconds (kombu:
    # 10 * 10 by default); keep that sweep well inside the timeout.
    transport = {
        "visibility_timeout": vt,
        "unacked_restore_interval": max(1, min(10, int(vt // 5))),
        "unacked_restore_throttle": 1 if vt < 600 else 10,
        "socket_connect_timeout": 3,
        "socket_timeout": 30,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }
    return dict(
        broker_transport_options=transport,
        broker_connection_timeout=3,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=not client,
        broker_connection_max_retries=3 if client else None,
        # A chunk running when the broker connection drops is left to finish (it is time-limited
        # below the visibility timeout); its ack is lost, so it is redelivered and finds itself
        # done. Cancelling it would waste the work and count as a crash of the chunk.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        redis_socket_connect_timeout=3,
        redis_socket_timeout=30,
        redis_retry_on_timeout=True,
        result_backend_always_retry=not client,
        result_backend_max_retries=20,
        result_expires=7 * 24 * 3600,
    )


def check_broker(app, url: str, timeout: float = 3.0) -> None:
    """Connect once; raise a one-line :class:`TransientError` naming the URL if the broker is away."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, interval_max=0.5, timeout=timeout)
    except Exception as e:  # kombu raises OperationalError, redis ConnectionError, OSError...
        raise TransientError(
            f"cannot reach the Celery broker at {safe_url(url)} ({one_line(e)}); start it, or {BROKER_HINT}"
        ) from None


def workers_online(app, timeout: float = 1.0) -> list[str]:
    """Names of the workers that answer a ping (empty when none is running)."""
    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception:  # noqa: BLE001 - informational only
        return []
    return sorted(name for r in replies for name in r)


def queue_length(app, queue: str = QUEUE) -> int | None:
    """Tasks waiting in ``queue`` (not counting ones a worker holds); None if the broker is away."""
    from kombu.exceptions import ChannelError

    try:
        with app.connection_for_read() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:  # the queue does not exist yet: nothing was ever queued
        return 0
    except Exception:  # noqa: BLE001
        return None


class CeleryBackend:
    """Runs an ingest plan on Celery workers (``vidsearch ingest --backend celery``)."""

    name = "celery"

    def __init__(
        self,
        broker: str | None = None,
        wait: bool = True,
        batch_size: int = 32,
        quiet: bool = False,
        poll_s: float = 0.5,
        result_check_s: float = 5.0,
        stall_s: float | None = None,
        notify: Callable[[str], None] | None = None,
    ):
        self.url = broker_url(broker)
        self.wait = wait
        self.batch_size = batch_size
        self.quiet = quiet
        self.poll_s = poll_s
        self.result_check_s = result_check_s
        #: seconds without a finished chunk before the broker is audited for lost tasks
        self.stall_s = stall_s if stall_s is not None else float(current().stall_s)
        # warnings (no worker, lost tasks) go to the log, i.e. stderr, even when quiet (no progress bar)
        self.notify = notify or (lambda msg: log.warning("%s", msg))
        self.app = make_celery(self.url, client=True)
        self.task_ids: dict[str, str] = {}  # chunk_id -> task id
        self.resends = ResendGuard(self.app)  # caps resends; stops on an index mismatch
        check_broker(self.app, self.url)  # before the archive is scanned: fail fast, in one line

    # -- submit ------------------------------------------------------------------------------
    def submit(self, specs: list[ChunkSpec], store: IndexStore) -> None:
        """Send one task per chunk. A stale ``.failed`` marker of a re-planned chunk is removed first."""
        if not specs:
            return
        with Catalog(store) as cat:
            cat.requeue_failed(s.chunk_id for s in specs)
        for spec in specs:
            store.failed_path(spec).unlink(missing_ok=True)
        self._send(specs, str(store.root))

    def _send(self, specs: list[ChunkSpec], root: str) -> None:
        sent = 0
        try:
            with self.app.producer_or_acquire() as producer:
                for page in range(0, len(specs), 200):  # listed one page at a time, just before it is sent
                    tasks = {f"{s.chunk_id}-{uuid.uuid4().hex[:12]}": s for s in specs[page:page + 200]}
                    args = {task_id: [s.to_dict(), root, self.batch_size] for task_id, s in tasks.items()}
                    self._list_sent(producer, args)  # listed first: a worker may end a task at once
                    for task_id, spec in tasks.items():
                        self.app.send_task(TASK_NAME, args=args[task_id], task_id=task_id, queue=QUEUE,
                                           producer=producer)
                        self.task_ids[spec.chunk_id] = task_id
                        sent += 1
        except Exception as e:  # noqa: BLE001 - kombu/redis connection errors after the publish retries
            raise TransientError(
                f"lost the Celery broker at {safe_url(self.url)} after queueing {sent} of "
                f"{len(specs)} chunks ({one_line(e)}); run the same command again when it is back"
            ) from None

    def _list_sent(self, producer, tasks: dict[str, list]) -> None:
        """Add ``tasks`` to the broker's list of sent tasks (:data:`TASKS_KEY`; Redis only)."""
        import json

        if not self.url.startswith(("redis://", "rediss://", "redis+socket://")):
            return
        client = producer.channel.client
        client.hset(TASKS_KEY, mapping={tid: json.dumps({"args": args, "queue": QUEUE}) for tid, args in tasks.items()})

    def broker_task_ids(self) -> set[str] | None:
        """Ids of the tasks the broker holds: queued, or delivered and not yet acknowledged.

        Redis only (None for other brokers, or when the broker cannot be read). A running task
        is unacknowledged until its chunk is written (late ack), so a chunk with no marker whose
        task is in neither place was lost by the broker.
        """
        import json

        if not self.url.startswith(("redis://", "rediss://", "redis+socket://")):
            return None
        try:
            with self.app.connection_for_read() as conn:
                ch = conn.default_channel
                client = ch.client
                ids: set[str] = set()
                steps = getattr(ch, "priority_steps", [0])
                keys = {ch._q_for_pri(QUEUE, p) for p in steps} if hasattr(ch, "_q_for_pri") else {QUEUE}
                for key in keys:
                    for raw in client.lrange(key, 0, -1):
                        ids.add(json.loads(raw)["headers"]["id"])
                for raw in client.hvals(getattr(ch, "unacked_key", "unacked")):
                    ids.add(json.loads(raw)[0]["headers"]["id"])
                return ids
        except Exception:  # noqa: BLE001 - broker away or an unexpected message: audit later
            log.debug("cannot read the broker's queue", exc_info=True)
            return None

    def resend_lost(self, remaining: dict[str, ChunkSpec], store: IndexStore) -> int:
        """Re-send the chunks whose tasks the broker no longer holds (Redis pops a task before it
        records it as unacknowledged: a broker that dies in between loses it). Duplicates are
        harmless: a task for a done chunk returns at once, a shard is replaced atomically."""
        first = self.broker_task_ids()
        if first is None:
            return 0
        time.sleep(1.0)  # a task is between the queue and the unacked set only for an instant
        second = self.broker_task_ids()
        if second is None:
            return 0
        lost = [
            spec for cid, spec in remaining.items()
            if self.task_ids.get(cid) not in first | second
            and not store.marker_path(spec).exists() and not store.failed_path(spec).exists()
        ]
        if lost:
            lost = self.resends.admit(lost, self.task_ids, store)
            self.notify(f"the broker lost {len(lost)} queued chunks (was it restarted?); sending them again")
            self._send(lost, str(store.root))
        return len(lost)

    # -- Backend protocol --------------------------------------------------------------------
    def run(self, plan: IngestPlan, store: IndexStore, report: IngestReport, progress) -> None:
        self.submit(plan.todo, store)
        if not plan.todo:
            return
        if not self.wait:
            report.pending = len(plan.todo)
            if not workers_online(self.app):
                self.notify(f"no worker is listening on {safe_url(self.url)} yet: the chunks stay queued until one starts (`vidsearch worker`)")
            return
        if not workers_online(self.app):
            self.notify(f"no worker is listening on {safe_url(self.url)} yet: waiting for one (start it with `vidsearch worker`)")
        remaining = {s.chunk_id: s for s in plan.todo}
        try:
            self._wait(remaining, store, report, progress)
        finally:
            report.pending = len(remaining)

    def _wait(self, remaining: dict[str, ChunkSpec], store: IndexStore, report: IngestReport, progress) -> None:
        next_results = time.monotonic() + self.result_check_s
        last_progress = next_audit = time.monotonic()
        while remaining:
            before = len(remaining)
            for cid, spec in list(remaining.items()):
                marker = read_marker(store.marker_path(spec))
                if marker is not None:
                    del remaining[cid]
                    count_chunk(report, spec, marker)
                    progress(spec, marker)
                    continue
                failed = read_marker(store.failed_path(spec))
                if failed is not None and not store.marker_path(spec).exists():
                    del remaining[cid]
                    report.chunks_failed += 1
                    report.failures.append(Failure(spec.path, failed.get("error", "failed"), spec.start, spec.end))
                    progress(spec, None)
            if not remaining:
                return
            now = time.monotonic()
            if len(remaining) < before:
                last_progress = now
            if now >= next_results:
                self._check_results(remaining, store)
                next_results = time.monotonic() + self.result_check_s
            if now - last_progress >= self.stall_s and now >= next_audit:
                # nothing finished for a while: make sure every remaining chunk still has a task
                try:
                    self.resend_lost(remaining, store)
                except TransientError as e:
                    log.warning("%s", e)
                next_audit = time.monotonic() + self.stall_s
            time.sleep(self.poll_s)

    def _check_results(self, remaining: dict[str, ChunkSpec], store: IndexStore) -> None:
        """Tasks that ended without a marker (a worker-side bug, a time limit): record them as failed.

        The broker or result backend being away only delays this check.
        """
        for cid, spec in list(remaining.items())[:500]:
            task_id = self.task_ids.get(cid)
            if not task_id:
                continue
            try:
                res = self.app.AsyncResult(task_id)
                state = res.state
                if state == "FAILURE":
                    err = one_line(res.result) if isinstance(res.result, BaseException) else str(res.result)
                elif state == "SUCCESS" and isinstance(res.result, dict) and res.result.get("status") == "failed":
                    err = str(res.result.get("error", "failed"))  # the worker could not write the marker
                else:
                    continue
            except Exception:  # noqa: BLE001 - result backend unreachable: look again later
                log.debug("result backend unreachable", exc_info=True)
                return
            if not store.marker_path(spec).exists() and not store.failed_path(spec).exists():
                store.write_failed(spec, err if err.startswith(spec.path) else f"{spec.path}: worker task failed: {err}")


def task_result(status: str, spec: ChunkSpec, **extra: Any) -> dict:
    """What a worker task returns (JSON): ``status`` is done, skipped or failed."""
    return {"status": status, "chunk_id": spec.chunk_id, "path": spec.path, "start": spec.start, "end": spec.end, **extra}


@contextlib.contextmanager
def crash_guard(store: IndexStore, spec: ChunkSpec, max_crashes: int) -> Iterator[None]:
    """Count worker deaths on a chunk: a hidden ``.<chunk>.running`` file holds how many
    deliveries of it started; any Python-level exit removes it, so only a process that died
    (out of memory, a decoder crash, SIGKILL) leaves it behind. After ``max_crashes`` such
    deaths the chunk is a poison chunk: :class:`UserError`, recorded and not requeued forever."""
    crash = store.chunk_dir(spec) / f".{spec.name}.running"
    crash.parent.mkdir(parents=True, exist_ok=True)
    try:
        crashes = int(crash.read_text() or 0)
    except (OSError, ValueError):
        crashes = 0
    if crashes >= max_crashes:
        crash.unlink(missing_ok=True)
        raise UserError(
            f"{spec.path}: a worker died {crashes} times while embedding "
            f"[{spec.start:.0f}-{spec.end:.0f}s] (out of memory or a decoder crash?)"
        )
    crash.write_text(str(crashes + 1))
    try:
        yield
    finally:
        crash.unlink(missing_ok=True)
