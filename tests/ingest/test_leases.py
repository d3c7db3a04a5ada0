"""Chunk leases, capped resends and the index-mismatch error, with default settings.

The end-to-end tests use the real redis-server and `vidsearch worker` processes of
test_distributed.py; the unit tests drive a reaper against a bare redis-server.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from test_distributed import (  # noqa: F401 - fixtures
    RedisServer, check_exactly_once, cluster, distributed, long_archive,
    needs_redis, redis_server, submitted,
)
from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import UserError
from vidsearch.index.shards import IndexStore
from vidsearch.ingest import leases
from vidsearch.ingest.celery import TASKS_KEY
from vidsearch.ingest.resends import ResendGuard

#: every frame of the long archive in 10 s chunks: 18 chunks of 250 frames, slow enough to be caught running
SLOW, SLOW_CHUNKS, SLOW_FRAMES = ("--chunk", "10", "--fps", "25", "--batch-size", "10"), 18, 4500
SPEC = ChunkSpec("ab" * 32, "/archive/x.mp4", 5.0, 10.0, "fps=1", "m@000000000001", 5.0)


def held_tasks(r) -> dict[str, ChunkSpec]:
    """task id -> chunk of every task the broker has delivered and not seen acknowledged."""
    held = [json.loads(raw)[0] for raw in r.hvals("unacked")]
    return {m["headers"]["id"]: ChunkSpec.from_dict(json.loads(base64.b64decode(m["body"]))[0][0]) for m in held}


def live_leases(r) -> list[dict]:
    return [rec for rec in map(json.loads, r.hvals(leases.LEASES_KEY)) if not rec.get("finished")]


def freeze_mid_chunk(r, store: IndexStore, worker) -> ChunkSpec | None:
    """SIGSTOP ``worker`` while it holds a lease; the chunk it was running (None: it had just finished)."""
    deadline, mine = time.time() + 60, []
    while time.time() < deadline and not mine:
        mine = [x for x in live_leases(r) if x["worker"] == worker.name]
    os.killpg(worker.proc.pid, signal.SIGSTOP)
    spec = held_tasks(r).get(mine[0]["task_id"]) if mine else None
    if spec is None or store.is_done(spec):
        os.killpg(worker.proc.pid, signal.SIGCONT)
        return None
    return spec


@distributed
@needs_redis
def test_a_dead_workers_chunk_is_redone_by_another_within_a_minute(cluster, long_archive):
    """Two workers, one SIGKILLed mid-chunk, then Redis restarted from its append-only file;
    the waiting submitter ends with every chunk done exactly once, and well within 90 s."""
    store, r = IndexStore(cluster.index), cluster.redis.client()
    a, b = cluster.worker(), cluster.worker()
    proc = cluster.submit(long_archive, *SLOW, wait=False)
    try:
        for _attempt in range(5):  # frozen mid-chunk, so that the kill lands there
            spec = freeze_mid_chunk(r, store, a)
            if spec is not None:
                break
        assert spec is not None, "the worker was never caught running a chunk"
        dead_at = time.time()
        # `status --videos --json` shows who holds which chunk, since when
        running = cluster.status()["running"]
        assert any(x["worker"] == a.name and x["chunk_id"] == spec.chunk_id for x in running), running
        assert all(x["since"].endswith("Z") and x["held_s"] >= 0 and x["host"] for x in running), running
        a.kill()
        cluster.redis.stop()  # and the broker goes down too; it comes back with its append-only file
        time.sleep(1)
        cluster.redis.start()
        while time.time() < dead_at + 90 and not store.is_done(spec):
            time.sleep(0.2)
        redone_s = time.time() - dead_at
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert store.is_done(spec) and redone_s < 90, f"redone after {redone_s:.0f}s:\n{b.output()[-3000:]}"
    print(f"the dead worker's chunk was redone {redone_s:.1f}s after the worker stopped")
    assert proc.returncode == 0, err
    rep = submitted(subprocess.CompletedProcess(proc.args, 0, out, err))
    assert rep["chunks_done"] == SLOW_CHUNKS and rep["pending"] == 0 and rep["chunks_failed"] == 0
    check_exactly_once(cluster.index, SLOW_FRAMES)
    assert f"{spec.path} [{spec.start:.0f}-{spec.end:.0f}s]: {a.name} on " in b.output()
    assert "Traceback" not in b.output()
    assert cluster.status()["running"] == []


@distributed
@needs_redis
def test_a_worker_writing_another_index_stops_the_ingest_in_one_line(cluster, archive, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cluster.env["VIDSEARCH_INDEX"] = str(elsewhere)  # the worker's setting ...
    worker = cluster.worker()
    cluster.env["VIDSEARCH_INDEX"] = str(cluster.index)  # ... is not the submitter's
    t0 = time.time()
    result = cluster.submit(archive, "--chunk", "10", timeout=180)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    host = worker.name.split("@", 1)[1]
    assert f"Error: worker {host} wrote " in errors[0]
    assert f"into {elsewhere} but this ingest reads {cluster.index}: set VIDSEARCH_INDEX on that worker" in errors[0]
    resends = result.stderr.count("sending them again")
    assert 1 <= resends <= 3, result.stderr  # detected after a resend or two, not looping
    assert time.time() - t0 < 120
    assert len(list(elsewhere.rglob("*.done"))) == 10 and not list(cluster.index.rglob("*.done"))


@distributed
@needs_redis
def test_a_live_workers_retry_wait_longer_than_the_lease_is_left_alone(cluster, tmp_path):
    """A task waiting for its retry time (eta) is held, unacknowledged and without a lease, by a
    live worker; its record claims it, so no reaper requeues it however long the wait."""
    from vidsearch.demo.synth import make_video

    video = tmp_path / "clips" / "a.mp4"
    make_video(video, 10.0, fps=10, size=(160, 120))
    cluster.env.update(VIDSEARCH_LEASE_S="3", VIDSEARCH_LEASE_RENEW_S="1")  # waits of 4, 8, 16 s outlast it
    result = cluster.submit(video.parent, "--chunk", "10", "--fps", "1", "--no-wait")
    assert result.returncode == 0 and submitted(result)["pending"] == 1, result.stderr
    video.rename(video.with_suffix(".away"))  # not found on the worker: retried after 2, 4, 8 ... s
    worker, r = cluster.worker(), cluster.redis.client()
    deadline = time.time() + 60
    while time.time() < deadline and "Retry in 8.0s" not in worker.output():
        time.sleep(0.2)
    assert "Retry in 8.0s" in worker.output(), worker.output()[-3000:]
    time.sleep(6)  # two lease times into the 8 s wait
    log = worker.output()
    assert "sent it back to the queue" not in log and "sent it again" not in log, log[-3000:]
    assert log.count("] received") == 4 and r.llen("embed") == 0 and r.hlen("unacked") == 1  # no duplicate
    (held,) = held_tasks(r)
    assert r.hkeys(leases.WORKERS_KEY) == [worker.name.encode()]
    assert held in json.loads(r.hget(leases.WORKERS_KEY, worker.name))["tasks"]


# -- units ---------------------------------------------------------------------------------------
@pytest.fixture
def bare_redis(tmp_path, monkeypatch):
    server = RedisServer(tmp_path / "redis")
    server.start()
    monkeypatch.setenv("VIDSEARCH_BROKER_URL", server.url)
    yield server
    server.stop()


def _deliver(r, task_id: str, tag: str, task: str = "vidsearch.embed_chunk", eta: str | None = None,
             retries: int = 0) -> bytes:
    """What kombu keeps for a delivered, unacknowledged task: [payload, exchange, routing key]."""
    headers = {"id": task_id, "task": task, "eta": eta, "retries": retries}
    payload = {"body": "", "headers": headers, "properties": {"delivery_info": {}, "delivery_tag": tag}}
    entry = json.dumps([payload, "embed", "embed"]).encode()
    r.hset("unacked", tag, entry)
    r.zadd("unacked_index", {tag: time.time()})
    return entry


def _lease(r, token: str, task_id: str, **extra) -> bytes:
    rec = {"chunk_id": SPEC.chunk_id, "path": SPEC.path, "start": 5.0, "end": 10.0, "task_id": task_id,
           "queue": "embed", "worker": "w1@node", "host": "node", "since": time.time(), "renewed": time.time(), **extra}
    raw = json.dumps(rec).encode()
    r.hset(leases.LEASES_KEY, token, raw)
    return raw


@distributed
@needs_redis
def test_reapers_requeue_an_expired_lease_once_and_spare_live_ones(bare_redis):
    r = bare_redis.client()
    _deliver(r, "t-dead", "tag-dead")
    _deliver(r, "t-live", "tag-live")
    _lease(r, "dead", "t-dead")
    _lease(r, "live", "t-live")
    _lease(r, "gone", "t-acked")  # its task was acknowledged: the lease is only dropped
    _deliver(r, "t-orphan", "tag-orphan")  # taken by a worker that died before it started the task
    _deliver(r, "t-retry", "tag-retry", eta="2030-01-01T00:00:00")  # held by a live worker until its retry time
    _worker(r, "w-live", ["t-retry"])
    _deliver(r, "t-other", "tag-other", task="someone.else")  # another application's task
    reapers = [leases.Reaper(leases.redis_client(), lease_s=20) for _ in range(2)]
    for reaper in reapers:
        assert reaper.sweep(now=0) == 0
    _lease(r, "live", "t-live", renewed=time.time() + 1)  # renewed: not expired
    _worker(r, "w-live", ["t-retry"], renewed=time.time() + 1)
    assert [reaper.sweep(now=19) for reaper in reapers] == [0, 0]
    assert [reaper.sweep(now=20) for reaper in reapers] == [2, 0]  # one atomic claim each
    assert sorted(r.hkeys("unacked")) == [b"tag-live", b"tag-other", b"tag-retry"] and r.zcard("unacked_index") == 3
    assert r.llen("embed") == 2  # at the head of the queue (workers pop the right end)
    assert {json.loads(m)["headers"]["id"] for m in r.lrange("embed", 0, -1)} == {"t-dead", "t-orphan"}
    assert all(json.loads(m)["headers"]["redelivered"] for m in r.lrange("embed", 0, -1))
    assert r.hkeys(leases.LEASES_KEY) == [b"live"]
    assert [x["worker"] for x in leases.running_chunks("/nowhere")] == []


def _worker(r, name: str, tasks: list[str], **extra) -> bytes:
    """A worker main process's record: the tasks it holds (see leases.Holder)."""
    rec = {"worker": name, "host": "node", "pid": 1, "renewed": time.time(), "tasks": tasks, **extra}
    raw = json.dumps(rec).encode()
    r.hset(leases.WORKERS_KEY, name, raw)
    return raw


def _sent(r, task_id: str, spec: ChunkSpec = SPEC) -> None:
    """What the submitter lists for every task it sends."""
    r.hset(TASKS_KEY, task_id, json.dumps({"args": [spec.to_dict(), "/index", 8], "queue": "embed"}))


def _queued(r, task_id: str) -> None:
    headers = {"id": task_id, "task": "vidsearch.embed_chunk"}
    r.lpush("embed", json.dumps({"body": "", "headers": headers, "properties": {}}))


@distributed
@needs_redis
def test_a_dead_workers_tasks_come_back_taken_waiting_or_popped_and_unrecorded(bare_redis):
    """A worker holds tasks it has not started (waiting for its retry time, or for its pool), and
    Redis pops a task before kombu records it as delivered: a worker killed in between takes it
    with it. Once the dead worker's record stops changing, the reapers put back all of them,
    each once, and leave alone what a live worker holds or the queue still has."""
    r = bare_redis.client()
    _deliver(r, "t-eta-dead", "tag-eta-dead", eta="2030-01-01T00:00:00")
    _deliver(r, "t-eta-live", "tag-eta-live", eta="2030-01-01T00:00:00", retries=1)
    _lease(r, "attempt-0", "t-eta-live", retries=0, finished=True)  # its first attempt's lease, not renewed
    _worker(r, "w-dead", ["t-eta-dead"])
    _worker(r, "w-live", ["t-eta-live"])
    for task_id in ("t-eta-dead", "t-eta-live", "t-lost", "t-queued"):
        _sent(r, task_id)
    _queued(r, "t-queued")
    # t-lost: popped by w-dead's last BRPOP, which was killed before it recorded it in `unacked`
    reapers = [leases.Reaper(leases.redis_client(), lease_s=20) for _ in range(2)]
    assert [reaper.sweep(now=0) for reaper in reapers] == [0, 0]
    _worker(r, "w-live", ["t-eta-live"], renewed=time.time() + 1)
    assert [reaper.sweep(now=19) for reaper in reapers] == [0, 0]
    _worker(r, "w-live", ["t-eta-live"], renewed=time.time() + 2)
    assert [reaper.sweep(now=20) for reaper in reapers] == [2, 0]  # one record dropped, by one reaper
    assert r.hkeys(leases.WORKERS_KEY) == [b"w-live"] and r.hkeys("unacked") == [b"tag-eta-live"]
    assert r.hlen(leases.LEASES_KEY) == 0  # the first attempt's lease is dropped, the retry left alone
    queued = [json.loads(m)["headers"]["id"] for m in r.lrange("embed", 0, -1)]
    assert sorted(queued) == ["t-eta-dead", "t-lost", "t-queued"]  # t-lost published again, once
    lost = next(json.loads(m) for m in r.lrange("embed", 0, -1) if json.loads(m)["headers"]["id"] == "t-lost")
    assert json.loads(base64.b64decode(lost["body"]))[0] == [SPEC.to_dict(), "/index", 8]
    _worker(r, "w-live", ["t-eta-live"], renewed=time.time() + 3)
    assert [reaper.sweep(now=60) for reaper in reapers] == [0, 0]  # nothing else: the list keeps t-lost until it ends
    leases.task_ended("t-lost")
    assert sorted(r.hkeys(TASKS_KEY)) == [b"t-eta-dead", b"t-eta-live", b"t-queued"]


@distributed
@needs_redis
def test_a_task_lost_with_every_worker_alive_is_sent_again_once(bare_redis, caplog):
    """A pop whose reply a dropped connection lost (or a broker dying mid-pop): the task is listed,
    neither queued nor delivered, and no worker dies. One reaper sends it again once it has stayed
    so for the lease time; a task only in flight for a moment is left alone."""
    r = bare_redis.client()
    _worker(r, "w-live", ["t-run"])
    _deliver(r, "t-run", "tag-run")
    for task_id in ("t-run", "t-queued", "t-lost", "t-flight"):
        _sent(r, task_id)
    _queued(r, "t-queued")
    reapers = [leases.Reaper(leases.redis_client(), lease_s=20) for _ in range(2)]
    assert [reaper.sweep(now=0) for reaper in reapers] == [0, 0]  # t-lost and t-flight: missing, since 0
    _queued(r, "t-flight")  # it was only on its way
    _worker(r, "w-live", ["t-run"], renewed=time.time() + 1)
    assert [reaper.sweep(now=10) for reaper in reapers] == [0, 0]
    r.lrem("embed", 0, next(m for m in r.lrange("embed", 0, -1) if b"t-flight" in m))  # popped, and lost
    _worker(r, "w-live", ["t-run"], renewed=time.time() + 2)
    with caplog.at_level("WARNING", logger="vidsearch.leases"):
        assert [reaper.sweep(now=20) for reaper in reapers] == [1, 0]  # t-lost, by one reaper; t-flight: since 20
    assert "neither queued nor held by a worker for 20s" in caplog.text and "[5-10s]" in caplog.text
    queued = sorted(json.loads(m)["headers"]["id"] for m in r.lrange("embed", 0, -1))
    assert queued == ["t-lost", "t-queued"]
    assert r.hkeys(leases.WORKERS_KEY) == [b"w-live"] and r.hkeys("unacked") == [b"tag-run"]  # nothing else moved
    _worker(r, "w-live", ["t-run"], renewed=time.time() + 3)
    assert [reaper.sweep(now=40) for reaper in reapers] == [1, 0]  # t-flight, gone for 20 s now
    _worker(r, "w-live", ["t-run"], renewed=time.time() + 4)
    assert [reaper.sweep(now=80) for reaper in reapers] == [0, 0]  # all accounted for
    assert sorted(json.loads(m)["headers"]["id"] for m in r.lrange("embed", 0, -1)) == ["t-flight", "t-lost", "t-queued"]


@distributed
@needs_redis
def test_a_lease_is_renewed_then_left_finished_and_shown_while_held(bare_redis, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_LEASE_S", "0.6")
    store = IndexStore(tmp_path / "index")

    class Request:
        id, hostname, delivery_info = "t-1", "w1@node", {"routing_key": "embed"}

    r = bare_redis.client()
    with leases.hold_lease(Request(), SPEC, store, str(store.root)):
        first = r.hvals(leases.LEASES_KEY)
        time.sleep(0.5)  # renewed every 0.2 s
        assert r.hvals(leases.LEASES_KEY) != first
        (held,) = leases.running_chunks(store.root)
        assert held["worker"] == "w1@node" and held["path"] == SPEC.path and held["renewed_s_ago"] < 0.5
        assert leases.running_lines([held])[0].startswith(f"running: {SPEC.path} [5-10s] on w1@node since ")
        store.write_shard(SPEC, np.arange(3.0), np.zeros((3, 4), np.float32))
        assert leases.running_chunks(store.root) == []  # done: not shown, even before the lease says so
    (rec,) = map(json.loads, r.hvals(leases.LEASES_KEY))
    assert rec["finished"] and leases.running_chunks(store.root) == []


def test_resends_are_capped_and_a_done_claim_elsewhere_is_an_index_mismatch(tmp_path):
    store = IndexStore(tmp_path / "index")
    results: dict[str, dict] = {}

    class App:
        def AsyncResult(self, task_id):  # noqa: N802 - Celery's name
            res = results.get(task_id)
            return type("R", (), {"state": "SUCCESS" if res else "PENDING", "result": res})()

    guard = ResendGuard(App(), max_resends=3)
    assert guard.admit([SPEC], {SPEC.chunk_id: "t1"}, store) == [SPEC]  # lost once: sent again
    for _ in range(2):
        guard.admit([SPEC], {SPEC.chunk_id: "t2"}, store)
    with pytest.raises(UserError, match=r"x.mp4 \[5-10s\] was sent 4 times and each task left the broker"):
        guard.admit([SPEC], {SPEC.chunk_id: "t3"}, store)

    guard = ResendGuard(App())
    results["t1"] = results["t2"] = {"status": "done", "index": "/mnt/other", "host": "gpu7"}
    guard.admit([SPEC], {SPEC.chunk_id: "t1"}, store)  # the first claim may be a slow shared directory
    with pytest.raises(UserError) as e:
        guard.admit([SPEC], {SPEC.chunk_id: "t2"}, store)
    assert str(e.value) == (
        f"worker gpu7 wrote /archive/x.mp4 [5-10s] into /mnt/other but this ingest reads {store.root}: "
        f"set VIDSEARCH_INDEX on that worker to its path to {store.root} (or unset it) and run the ingest again"
    )
    assert "\n" not in str(e.value)
