"""Chunk leases: a chunk held by a dead worker is back at the head of the queue within ~30 s.

A worker holds a lease (a field of the Redis hash ``vidsearch:leases``) on the chunk it runs,
renewed by a heartbeat thread. A reaper thread in every worker process requeues the task of a
lease it has seen unchanged for the lease time (or of a delivered task it has seen without any
lease that long), with one atomic script, so no task is requeued twice. Staleness is judged on
the reaper's own clock and forgotten when Redis is away, so node clocks and broker outages
never expire a live lease. See docs/distributed.md.
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
from vidsearch.settings import current

log = logging.getLogger("vidsearch.leases")

LEASES_KEY = "vidsearch:leases"
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
        "task_id": getattr(request, "id", None), "queue": (getattr(request, "delivery_info", None) or {}).get("routing_key"),
        "worker": getattr(request, "hostname", None) or socket.gethostname(), "host": socket.gethostname(),
        "pid": os.getpid(), "index": str(store.root), "task_index": task_root, "spec": spec.to_dict(),
    }
    lease = Lease(client, record, renew_seconds()).start()
    try:
        yield
    finally:
        lease.finish()


# -- the reaper ----------------------------------------------------------------------------------
class Reaper:
    """Requeues the tasks of leases that stopped changing (see the module docstring)."""

    def __init__(self, client, lease_s: float, unacked: str = "unacked", unacked_index: str = "unacked_index",
                 task_name: str = "vidsearch.embed_chunk"):
        self.client, self.lease_s, self.task_name = client, lease_s, task_name
        self.unacked, self.unacked_index = unacked, unacked_index
        self.seen: dict[bytes, tuple[bytes, float]] = {}  # token -> (lease as last read, first read then)
        self.orphans: dict[bytes, tuple[bytes, float]] = {}  # delivery tag -> (entry, first seen without lease)

    def sweep(self, now: float | None = None) -> int:
        """Look at every lease once; requeue the chunks of expired ones. Returns how many."""
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
        return requeued + self._sweep_orphans(leases, now)

    def _sweep_orphans(self, leases: dict, now: float) -> int:
        """Requeue a task delivered but without any lease for the lease time: its worker died between
        taking it and starting it. (A task waiting for its retry time, ``eta``, is left alone.)"""
        leased = {json.loads(raw).get("task_id") for raw in leases.values()}
        entries = self.client.hgetall(self.unacked)
        self.orphans = {t: s for t, s in self.orphans.items() if t in entries}
        requeued = 0
        for tag, entry in entries.items():
            payload = _payload(entry)
            headers = (payload or {}).get("headers") or {}
            if headers.get("task") != self.task_name or headers.get("id") in leased or headers.get("eta"):
                self.orphans.pop(tag, None)
                continue
            before = self.orphans.get(tag)
            if before is None or before[0] != entry:
                self.orphans[tag] = (entry, now)
            elif now - before[1] >= self.lease_s:
                del self.orphans[tag]
                if self._requeue(b"", b"", tag, entry, payload, None):
                    requeued += 1
                    log.warning("%s: taken by a worker that never started it (dead?); sent it back to the "
                                "queue", _describe(payload))
        return requeued

    def _unacked_entry(self, task_id: str) -> tuple[bytes, bytes, dict] | None:
        for tag, entry in self.client.hgetall(self.unacked).items():
            payload = _payload(entry)
            if payload and (payload.get("headers") or {}).get("id") == task_id:
                return tag, entry, payload
        return None

    def reclaim(self, token: bytes, raw: bytes, leases: dict | None = None) -> int:
        """Drop an expired lease and put its task back at the head of its queue (1 if it was)."""
        rec = json.loads(raw)
        found = self._unacked_entry(rec.get("task_id"))
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


def _describe(payload: dict) -> str:
    """``path [start-end s]`` of a task message (its id when the body cannot be read)."""
    try:
        spec = json.loads(base64.b64decode(payload["body"]))[0][0]
        return f"{spec['path']} [{spec['start']:.0f}-{spec['end']:.0f}s]"
    except Exception:  # noqa: BLE001 - only for the log line
        return f"task {(payload.get('headers') or {}).get('id')}"


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
            reaper.seen.clear()  # after an outage every lease gets a full period to be renewed
            if not away:
                log.info("lease reaper paused: %s: %s", type(e).__name__, e)
            away = True


_reaper_pid: int | None = None


def start_reaper(unacked: str = "unacked", unacked_index: str = "unacked_index",
                 task_name: str = "vidsearch.embed_chunk") -> bool:
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
    parent would be copied into every fork), else the worker's own process."""
    from celery import signals

    from vidsearch.ingest.celery import TASK_NAME

    opts = app.conf.broker_transport_options or {}
    keys = (opts.get("unacked_key", "unacked"), opts.get("unacked_index_key", "unacked_index"), TASK_NAME)

    def in_child(**_: Any) -> None:
        start_reaper(*keys)

    def in_worker(sender=None, **_: Any) -> None:
        if "prefork" not in type(getattr(sender, "pool", None)).__module__:
            start_reaper(*keys)

    signals.worker_process_init.connect(in_child, weak=False)
    signals.worker_ready.connect(in_worker, weak=False)


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
