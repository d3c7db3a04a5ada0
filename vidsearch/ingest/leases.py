"""Chunk leases: a chunk held by a dead worker is back at the head of the queue within ~30 s.

A worker holds a lease (a field of the Redis hash ``vidsearch:leases``) on the chunk it runs,
renewed by a heartbeat thread. Each worker's main process also keeps a record (a field of
``vidsearch:workers``) listing every task it holds, running, waiting for its pool or for its
retry time (``eta``), renewed the same way. A reaper thread in every worker process requeues
the task of a lease it has seen unchanged for the lease time, or a delivered task that neither
a lease nor a worker record it has seen change in that time claims, with one atomic script, so
no task is requeued twice. Redis pops a task before kombu records it as delivered: a worker
killed in between takes the task with it, and so does a pop whose reply a dropped connection
lost. So the submitter lists every task it sends in ``vidsearch:tasks`` (dropped when the task
ends); the reaper that finds a worker record gone stale sends again the listed tasks that are
neither queued nor delivered, and with every worker alive a listed task found in neither place
for the lease time is sent again by one reaper. Staleness is
judged on the reaper's own clock and forgotten when Redis is away, so node clocks and broker
outages never expire a live lease. See docs/distributed.md.
"""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import threading
import time
from bisect import bisect
from typing import Any, Iterator

from vidsearch.core.plan import ChunkSpec
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.celery import QUEUE, TASK_NAME, TASKS_KEY
from vidsearch.settings import current

log = logging.getLogger("vidsearch.leases")

LEASES_KEY = "vidsearch:leases"
#: worker node name -> what its main process holds (see :class:`Holder`)
WORKERS_KEY = "vidsearch:workers"
#: + task id: set (with an expiry) by the one reaper that sends a lost task again
LOST_KEY = b"vidsearch:lost:"
#: Seconds a lease may go unrenewed before any worker requeues its chunk.
DEFAULT_LEASE_S = 20.0
#: Seconds between two renewals (and between two sweeps of a reaper).
DEFAULT_RENEW_S = 5.0
PRIORITY_SEP, PRIORITY_STEPS = "\x06\x16", [0, 3, 6, 9]  # kombu's Redis priority queues

# KEYS: leases, unacked, unacked index, queue; ARGV: token ('' for a task without a lease), lease,
# delivery tag, entry, payload.
REQUEUE = """
if ARGV[1] ~= '' then
  if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[4] then return -1 end
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[4], ARGV[5])
return 1
"""
DROP = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0"


def _seconds(name: str, raw: str | None, default: float) -> float:
    raw = raw or ""
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", name, raw, default)
        return default
    return value if value > 0 else default


def lease_seconds() -> float:
    return _seconds("VIDSEARCH_LEASE_S", current().lease_s, DEFAULT_LEASE_S)


def renew_seconds() -> float:
    """The renewal period; at most a third of the lease, so two late beats never lose it."""
    return min(_seconds("VIDSEARCH_LEASE_RENEW_S", current().lease_renew_s, DEFAULT_RENEW_S), lease_seconds() / 3)


_clients: dict[tuple[int, str], Any] = {}


def redis_client(url: str | None = None, timeout: float = 5.0):
    """A redis-py client for the broker (one per process and URL); None when it is not Redis."""
    from vidsearch.settings import configured_broker_url

    url = url or configured_broker_url(None) or ""
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    elif not url.startswith(("redis://", "rediss://")):
        return None
    key = (os.getpid(), url)
    if key not in _clients:
        import redis

        _clients[key] = redis.Redis.from_url(
            url, socket_connect_timeout=min(3.0, timeout), socket_timeout=timeout, health_check_interval=10,
        )
    return _clients[key]


def redis_now(client) -> float:
    secs, micros = client.time()
    return secs + micros / 1e6


# -- the holder's side ---------------------------------------------------------------------------
class Lease:
    """A worker's claim on one running chunk, renewed by a daemon thread until :meth:`finish`."""

    def __init__(self, client, record: dict, renew_s: float):
        self.client, self.record, self.renew_s = client, record, renew_s
        self.token = f"{record['chunk_id']}:{os.urandom(6).hex()}"
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._beat, name="vidsearch-lease", daemon=True)

    def _write(self) -> None:
        try:
            now = redis_now(self.client)
            self.record.setdefault("since", now)
            self.record["renewed"] = now
            self.client.hset(LEASES_KEY, self.token, json.dumps(self.record))
            if self._warned:
                log.info("lease of %s renewed again", self.record["chunk_id"])
            self._warned = False
        except Exception as e:  # noqa: BLE001 - the broker is away: keep working, renew when it is back
            if not self._warned:
                log.warning("cannot renew the lease of chunk %s (%s: %s); retrying every %gs",
                            self.record["chunk_id"], type(e).__name__, e, self.renew_s)
            self._warned = True

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_s):
            self._write()

    def start(self) -> "Lease":
        self._write()
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop renewing and mark the lease finished. It stays until a reaper sees the task
        acknowledged: a worker that dies between the end of the chunk and the acknowledgement
        (or an acknowledgement lost to a broker restart) gets its task requeued too, and the
        redelivery, finding the chunk done, acknowledges it at once."""
        self._stop.set()
        self._thread.join(timeout=self.renew_s + 10)
        self.record["finished"] = True
        self._write()


@contextlib.contextmanager
def hold_lease(request, spec: ChunkSpec, store: IndexStore, task_root: str) -> Iterator[None]:
    """Hold a lease on ``spec`` while the block runs (a no-op when the broker is not Redis)."""
    client = redis_client()
    if client is None:
        yield
        return
    record = {
        "chunk_id": spec.chunk_id, "path": spec.path, "start": spec.start, "end": spec.end,
        "task_id": getattr(request, "id", None), "retries": getattr(request, "retries", 0) or 0,
        "queue": (getattr(request, "delivery_info", None) or {}).get("routing_key"),
        "worker": getattr(request, "hostname", None) or socket.gethostname(), "host": socket.gethostname(),
        "pid": os.getpid(), "index": str(store.root), "task_index": task_root, "spec": spec.to_dict(),
    }
    lease = Lease(client, record, renew_seconds()).start()
    try:
        yield
    finally:
        lease.finish()


def task_ended(task_id: str | None) -> None:
    """Take an ended task (done, skipped or recorded as failed) off the list of sent tasks."""
    client = redis_client()
    if client is None or not task_id:
        return
    try:
        client.hdel(TASKS_KEY, task_id)
    except Exception as e:  # noqa: BLE001 - broker away: a reaper may send it again; it is then skipped
        log.info("cannot take task %s off the list of sent tasks (%s: %s)", task_id, type(e).__name__, e)


def _held_task_ids() -> list[str]:
    """The tasks this worker process holds: received and not yet ended, including those waiting
    for a pool process or for their retry time (Celery drops them all when its connection drops)."""
    from celery.worker import state

    return sorted(state.requests.copy())  # dict.copy holds the GIL: safe from another thread


class Holder:
    """A worker main process's record in ``vidsearch:workers``: alive, and which tasks it holds,
    renewed by a daemon thread (a delivered task that no live record nor lease claims is requeued)."""

    def __init__(self, client, name: str, renew_s: float, held=_held_task_ids):
        self.client, self.name, self.renew_s, self.held = client, name, renew_s, held
        self._stop = threading.Event()
        self._warned = False

    def write(self) -> None:
        try:
            rec = {"worker": self.name, "host": socket.gethostname(), "pid": os.getpid(),
                   "renewed": redis_now(self.client), "tasks": self.held()}
            self.client.hset(WORKERS_KEY, self.name, json.dumps(rec))
            self._warned = False
        except Exception as e:  # noqa: BLE001 - broker away: renew when it is back
            if not self._warned:
                log.info("cannot renew the record of worker %s (%s: %s)", self.name, type(e).__name__, e)
            self._warned = True

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_s):
            self.write()

    def start(self) -> "Holder":
        self.write()  # before the first task is taken
        threading.Thread(target=self._beat, name="vidsearch-holder", daemon=True).start()
        return self

    def stop(self) -> None:
        """A worker shutting down (its unacknowledged tasks go back to the queue): drop the record."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self.client.hdel(WORKERS_KEY, self.name)


# -- the reaper ----------------------------------------------------------------------------------
class Reaper:
    """Requeues the tasks of dead workers (see the module docstring)."""

    def __init__(self, client, lease_s: float, unacked: str = "unacked", unacked_index: str = "unacked_index",
                 task_name: str = TASK_NAME, resend=None, queue: str = QUEUE):
        self.client, self.lease_s, self.task_name = client, lease_s, task_name
        self.unacked, self.unacked_index, self.queue = unacked, unacked_index, queue
        self.resend = resend or _resend
        self.seen: dict[bytes, tuple[bytes, float]] = {}  # token -> (lease as last read, first read then)
        self.workers: dict[bytes, tuple[bytes, float]] = {}  # worker -> (record as last read, first read then)
        self.orphans: dict[bytes, tuple[bytes, float]] = {}  # delivery tag -> (entry, first seen without lease)
        self.missing: dict[bytes, float] = {}  # listed task id -> first seen neither queued nor delivered

    def sweep(self, now: float | None = None) -> int:
        """Look at every lease, worker record and delivered task once; requeue the tasks of dead
        workers (and send again the tasks a dead worker took with it). Returns how many."""
        now = time.monotonic() if now is None else now
        leases = self.client.hgetall(LEASES_KEY)
        self.seen = {t: s for t, s in self.seen.items() if t in leases}
        requeued = 0
        for token, raw in leases.items():
            before = self.seen.get(token)
            if before is None or before[0] != raw:
                self.seen[token] = (raw, now)
            elif now - before[1] >= self.lease_s:
                del self.seen[token]
                requeued += self.reclaim(token, raw, leases)
        claims, dead = self._watch_workers(now)
        requeued += self._sweep_orphans(leases, claims, now)
        return requeued + (self.recover_lost() if dead else self._watch_lost(now))

    def _watch_workers(self, now: float) -> tuple[dict[str, float], bool]:
        """Per task id, when a worker record claiming it was last seen changing; and whether this
        reaper dropped a record that stopped changing (its worker is dead)."""
        records = self.client.hgetall(WORKERS_KEY)
        self.workers = {w: s for w, s in self.workers.items() if w in records}
        claims: dict[str, float] = {}
        dead = False
        for name, raw in records.items():
            before = self.workers.get(name)
            if before is None or before[0] != raw:
                self.workers[name] = before = (raw, now)
            elif now - before[1] >= self.lease_s:
                del self.workers[name]
                if self.client.eval(DROP, 1, WORKERS_KEY, name, raw):
                    dead = True
                    log.warning("worker %s has not renewed its record for %.0fs (dead?); its tasks go back to "
                                "the queue", name.decode(errors="replace"), self.lease_s)
            for task_id in _record(raw).get("tasks") or ():
                claims[task_id] = max(claims.get(task_id, before[1]), before[1])
        return claims, dead

    def _sweep_orphans(self, leases: dict, claims: dict[str, float], now: float) -> int:
        """Requeue a delivered task that no lease claims and no worker record has claimed, while
        changing, for the lease time: its worker died before starting it, or while it waited for
        a pool process or its retry time (``eta``)."""
        leased = {_attempt(json.loads(raw)) for raw in leases.values()}
        entries = self.client.hgetall(self.unacked)
        self.orphans = {t: s for t, s in self.orphans.items() if t in entries}
        requeued = 0
        for tag, entry in entries.items():
            payload = _payload(entry)
            headers = (payload or {}).get("headers") or {}
            if headers.get("task") != self.task_name or _attempt(headers) in leased:
                self.orphans.pop(tag, None)
                continue
            before = self.orphans.get(tag)
            if before is None or before[0] != entry:
                self.orphans[tag] = before = (entry, now)
            if now - max(before[1], claims.get(headers.get("id"), before[1])) >= self.lease_s:
                del self.orphans[tag]
                if self._requeue(b"", b"", tag, entry, payload, None):
                    requeued += 1
                    log.warning("%s: held by a worker that is gone (dead?) before it ran it; sent it back to the "
                                "queue", _describe(payload))
        return requeued

    def recover_lost(self, pause_s: float = 1.0) -> int:
        """Send again the tasks sent and not ended that are neither queued nor delivered: Redis
        pops a task before kombu records it as delivered, and a worker killed in between took it.
        Read twice, ``pause_s`` apart (a live worker holds a task there only for an instant)."""
        listed = set(self.client.hkeys(TASKS_KEY))
        if not listed:
            return 0
        lost = listed - self._broker_ids()
        if lost:
            time.sleep(pause_s)
            lost -= self._broker_ids()
            lost &= set(self.client.hkeys(TASKS_KEY))
        return self._send_again(lost, "taken from the queue by a worker that died before recording it")

    def _watch_lost(self, now: float) -> int:
        """Send again a listed task that stays neither queued nor delivered for the lease time with
        no worker dying: a pop whose reply a dropped connection (or a broker dying) lost. Looked
        for only while the list holds more tasks than the queue and the delivered ones together
        (a few counts per sweep); then the ids are compared, and only the reaper that claims a
        lost task first (``SET NX``) sends it."""
        listed = self.client.hlen(TASKS_KEY)
        if not listed or listed <= self._broker_count():
            self.missing.clear()
            return 0
        lost = set(self.client.hkeys(TASKS_KEY)) - self._broker_ids()
        self.missing = {t: self.missing.get(t, now) for t in lost}
        due = sorted(t for t, since in self.missing.items() if now - since >= self.lease_s)
        mine = set()
        for task_id in due:
            del self.missing[task_id]
            if self.client.set(LOST_KEY + task_id, b"1", nx=True, ex=max(1, int(2 * self.lease_s))):
                mine.add(task_id)
        return self._send_again(mine, f"neither queued nor held by a worker for {self.lease_s:.0f}s (lost by the "
                                      "broker or a dropped connection)")

    def _send_again(self, lost: set[bytes], why: str) -> int:
        sent = 0
        for task_id in sorted(lost):
            raw = self.client.hget(TASKS_KEY, task_id)
            if raw is None:
                continue  # ended meanwhile
            rec = json.loads(raw)
            self.resend(task_id.decode(), rec)
            sent += 1
            log.warning("%s: %s; sent it again", _describe_args(rec.get("args")) or f"task {task_id.decode()}", why)
        return sent

    def _queue_keys(self) -> list[str]:
        return [self.queue] + [f"{self.queue}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS[1:]]

    def _broker_count(self) -> int:
        """Messages queued (every priority) plus tasks delivered and not acknowledged."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._queue_keys():
            pipe.llen(key)
        pipe.hlen(self.unacked)
        return sum(pipe.execute())

    def _broker_ids(self) -> set[bytes]:
        """Ids of the tasks queued (read in pages from the newest: pops only shorten the tail) or delivered."""
        ids: set[bytes] = set()
        for key in self._queue_keys():
            start = 0
            while True:
                page = self.client.lrange(key, start, start + 999)
                ids.update(_task_id(_record(m)) for m in page)
                if len(page) < 1000:
                    break
                start += 1000
        ids.update(_task_id(_payload(e)) for e in self.client.hvals(self.unacked))
        return ids

    def _unacked_entry(self, rec: dict) -> tuple[bytes, bytes, dict] | None:
        """The delivery of the lease's own attempt (a retry is another message, with the same id)."""
        for tag, entry in self.client.hgetall(self.unacked).items():
            payload = _payload(entry)
            if payload and _attempt(payload.get("headers") or {}) == _attempt(rec):
                return tag, entry, payload
        return None

    def reclaim(self, token: bytes, raw: bytes, leases: dict | None = None) -> int:
        """Drop an expired lease and put its task back at the head of its queue (1 if it was)."""
        rec = json.loads(raw)
        found = self._unacked_entry(rec)
        if found is None or _held_by_another(rec["task_id"], token, leases or {}):
            # acknowledged, or requeued by Celery (a pool process died) and maybe running elsewhere
            self.client.eval(DROP, 1, LEASES_KEY, token, raw)
            return 0
        moved = self._requeue(token, raw, *found, rec.get("queue"))
        if moved == 1 and rec.get("finished"):
            log.info("%s [%.0f-%.0fs]: done by %s but its task was never acknowledged; sent it back to the "
                     "queue to be acknowledged", rec["path"], rec["start"], rec["end"], rec.get("worker"))
        elif moved == 1:
            log.warning("%s [%.0f-%.0fs]: %s on %s held it since %s and has not renewed its lease for %.0fs "
                        "(dead?); sent it back to the queue", rec["path"], rec["start"], rec["end"],
                        rec.get("worker"), rec.get("host"), _clock(rec.get("since")), self.lease_s)
        return int(moved == 1)


    def _requeue(self, token: bytes, raw: bytes, tag: bytes, entry: bytes, payload: dict, queue: str | None) -> int:
        """Atomically: drop the lease (unchanged) and move the task (still unacknowledged) to the
        head of its queue, as kombu does after the visibility timeout. 1 if this call moved it."""
        with contextlib.suppress(KeyError, TypeError):
            payload["headers"]["redelivered"] = True
            payload["properties"]["delivery_info"]["redelivered"] = True
        key = _queue_key(queue or json.loads(entry)[2] or "embed", payload)
        return self.client.eval(REQUEUE, 4, LEASES_KEY, self.unacked, self.unacked_index, key,
                                token, raw, tag, entry, json.dumps(payload))


def _payload(entry: bytes) -> dict | None:
    try:
        payload = json.loads(entry)[0]
        return payload if isinstance(payload, dict) else None
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def _attempt(rec: dict) -> tuple[str | None, int]:
    """(task id, retries) of a lease or of a task message's headers: one delivery attempt."""
    try:
        return rec.get("task_id") or rec.get("id"), int(rec.get("retries") or 0)
    except (TypeError, ValueError):
        return rec.get("task_id") or rec.get("id"), 0


def _record(raw: bytes) -> dict:
    try:
        rec = json.loads(raw)
        return rec if isinstance(rec, dict) else {}
    except ValueError:
        return {}


def _task_id(message: dict | None) -> bytes:
    """The task id in a task message's headers (``b""`` without one): of a queued message
    (:func:`_record`) or of an unacknowledged entry's message (:func:`_payload`)."""
    headers = (message or {}).get("headers")
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return str(task_id).encode() if task_id is not None else b""


def _describe_args(args) -> str | None:
    """``path [start-end s]`` of a task's arguments (None when they cannot be read)."""
    try:
        spec = args[0]
        return f"{spec['path']} [{spec['start']:.0f}-{spec['end']:.0f}s]"
    except (TypeError, KeyError, IndexError, ValueError):
        return None


_resend_apps: dict[tuple[int, str], Any] = {}


def _resend(task_id: str, rec: dict) -> None:
    """Publish a listed task again, under its own id (its chunk is skipped if it is done by then)."""
    from vidsearch.ingest.celery import broker_url, make_celery

    key = (os.getpid(), broker_url())
    if key not in _resend_apps:
        _resend_apps[key] = make_celery(key[1], client=True)
    _resend_apps[key].send_task(TASK_NAME, args=rec["args"], task_id=task_id, queue=rec.get("queue") or QUEUE)


def _describe(payload: dict) -> str:
    """``path [start-end s]`` of a task message (its id when the body cannot be read)."""
    try:
        args = json.loads(base64.b64decode(payload["body"]))[0]
    except Exception:  # noqa: BLE001 - only for the log line
        args = None
    return _describe_args(args) or f"task {(payload.get('headers') or {}).get('id')}"


def _held_by_another(task_id: str, token: bytes, leases: dict) -> bool:
    for other, raw in leases.items():
        rec = json.loads(raw)
        if other != token and rec.get("task_id") == task_id and not rec.get("finished"):
            return True
    return False


def _queue_key(queue: str, payload: dict) -> str:
    try:
        pri = max(0, min(int(payload["properties"].get("priority") or 0), 9))
    except (KeyError, TypeError, ValueError):
        pri = 0
    pri = PRIORITY_STEPS[bisect(PRIORITY_STEPS, pri) - 1]
    return f"{queue}{PRIORITY_SEP}{pri}" if pri else queue


def _clock(stamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "?"


def _reap_forever(reaper: Reaper, interval: float) -> None:
    away = False
    while True:
        time.sleep(interval)
        try:
            reaper.sweep()
            if away:
                log.info("lease reaper: broker reachable again")
            away = False
        except Exception as e:  # noqa: BLE001 - broker away: Celery reports it; look again later
            # after an outage every lease and worker record gets a full period to be renewed
            reaper.seen.clear(), reaper.workers.clear(), reaper.orphans.clear()
            if not away:
                log.info("lease reaper paused: %s: %s", type(e).__name__, e)
            away = True


_reaper_pid: int | None = None


def start_reaper(unacked: str = "unacked", unacked_index: str = "unacked_index", task_name: str = TASK_NAME) -> bool:
    """Start this process's reaper thread (once per process; not when the broker is not Redis)."""
    global _reaper_pid
    client = redis_client()
    if client is None or _reaper_pid == os.getpid():
        return False
    _reaper_pid = os.getpid()
    reaper = Reaper(client, lease_seconds(), unacked, unacked_index, task_name)
    threading.Thread(target=_reap_forever, args=(reaper, renew_seconds()), name="vidsearch-reaper", daemon=True).start()
    return True


def attach(app) -> None:
    """Run a reaper in every process that runs tasks: each prefork child (a thread in the pool's
    parent would be copied into every fork), else the worker's own process; and keep the
    worker's record (:class:`Holder`) from its main process, from before it takes a task."""
    from celery import signals

    opts = app.conf.broker_transport_options or {}
    keys = (opts.get("unacked_key", "unacked"), opts.get("unacked_index_key", "unacked_index"), TASK_NAME)

    def in_child(**_: Any) -> None:
        start_reaper(*keys)

    holders: list[Holder] = []

    def in_worker(sender=None, **_: Any) -> None:
        client = redis_client()
        if client is not None and getattr(sender, "hostname", None):
            holders.append(Holder(client, sender.hostname, renew_seconds()).start())
        if "prefork" not in type(getattr(sender, "pool", None)).__module__:
            start_reaper(*keys)

    def at_shutdown(**_: Any) -> None:
        for holder in holders:
            holder.stop()

    signals.worker_process_init.connect(in_child, weak=False)
    signals.worker_ready.connect(in_worker, weak=False)
    signals.worker_shutdown.connect(at_shutdown, weak=False)


# -- what `vidsearch status` shows ----------------------------------------------------------------
def running_chunks(index_root: str | os.PathLike, url: str | None = None) -> list[dict]:
    """The chunks of this index that workers hold now: who, since when, last renewal (Redis time).
    A chunk already done is left out (its holder may have lost the broker before saying so)."""
    try:
        client = redis_client(url, timeout=2.0)
        if client is None:
            return []
        now, leases = redis_now(client), client.hgetall(LEASES_KEY)
    except Exception as e:  # noqa: BLE001 - no broker reachable: nothing to show
        log.debug("leases not readable: %s", e)
        return []
    here, store = os.path.realpath(index_root), IndexStore(index_root)
    out = []
    for raw in leases.values():
        rec = json.loads(raw)
        paths = {os.path.realpath(p) for p in (rec.get("index"), rec.get("task_index")) if p}
        if rec.get("finished") or here not in paths or _done(store, rec.get("spec")):
            continue
        since = float(rec.get("since") or now)
        out.append({
            "path": rec["path"], "start": rec["start"], "end": rec["end"], "chunk_id": rec["chunk_id"],
            "worker": rec.get("worker"), "host": rec.get("host"), "pid": rec.get("pid"),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
            "held_s": round(now - since, 1), "renewed_s_ago": round(now - float(rec.get("renewed") or since), 1),
        })
    return sorted(out, key=lambda r: (r["path"], r["start"]))


def _done(store: IndexStore, spec: dict | None) -> bool:
    try:
        return spec is not None and store.is_done(ChunkSpec.from_dict(spec))
    except (KeyError, TypeError, ValueError, OSError):
        return False


def running_lines(running: list[dict]) -> list[str]:
    """One line per held chunk, for the text output of `vidsearch status --videos`."""
    return [
        f"running: {r['path']} [{r['start']:.0f}-{r['end']:.0f}s] on {r['worker']} since "
        f"{r['since']} ({r['held_s']:.0f}s, renewed {r['renewed_s_ago']:.0f}s ago)"
        for r in running
    ]
