"""Distributed ingest with a real redis-server and real Celery worker processes.

Each test starts its own redis-server on a free 127.0.0.1 port (append-only file in a temp
directory, so a restarted server keeps its queue) and `vidsearch worker` subprocesses, all with
the default settings: a task held by a killed worker comes back through its lease (about 25 s),
not through the one-hour visibility timeout.
"""
from __future__ import annotations

import base64
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from conftest import ARCHIVE, run_cli
from vidsearch.demo.synth import make_video

ROOT = Path(__file__).resolve().parents[2]
REDIS = shutil.which("redis-server")

distributed = pytest.mark.distributed
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (.ci/run installs it)")

# The submitter, run as its own process: the CLI, then a check that it never loaded ONNX Runtime.
SUBMIT = """
import sys
from vidsearch.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="vidsearch")
finally:
    print("onnxruntime imported: %s" % ("onnxruntime" in sys.modules), file=sys.stderr)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes its append-only file and exits
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=5)


class Worker:
    """`vidsearch worker` (prefork, one child, its default Celery options) in its own process group."""

    count = 0

    def __init__(self, env: dict, logdir: Path):
        self.env = env
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        Worker.count += 1
        self.log = self.logdir / f"worker-{Worker.count}.log"
        cmd = [sys.executable, "-m", "vidsearch", "worker", "--concurrency", "1", "--pool", "prefork"]
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if " ready." in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def name(self) -> str:
        """The Celery node name (`vidsearch worker` execs celery in its own process)."""
        return f"vidsearch{self.proc.pid}@{socket.gethostname()}"

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool child): a machine that dies."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(home, colour, redis_server, tmp_path):
    """Env for submitter and workers sharing one index directory; workers started on demand."""
    index = tmp_path / "shared-index"
    env = {
        **os.environ,
        "VIDSEARCH_HOME": str(home),
        "VIDSEARCH_INDEX": str(index),
        "VIDSEARCH_BROKER_URL": redis_server.url,
        "VIDSEARCH_THREADS": "1",
        "VIDSEARCH_STALL_S": "3",  # the submitter audits the broker after 3 s without progress
        "PYTHONPATH": str(ROOT),
    }
    workers: list[Worker] = []

    class Cluster:
        redis = redis_server
        model = colour

        def __init__(self):
            self.env = env
            self.index = index

        def worker(self) -> Worker:
            w = Worker(env, tmp_path)
            workers.append(w)
            w.start()
            return w

        def submit(self, *args, wait=True, timeout=240) -> subprocess.CompletedProcess | subprocess.Popen:
            cmd = [sys.executable, "-c", SUBMIT, "ingest", *map(str, args), "--model", "demo-colours",
                   "--backend", "celery", "--json"]
            if not wait:
                return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

        def status(self) -> dict:
            out = subprocess.run([sys.executable, "-m", "vidsearch", "status", "--json", "--videos"],
                                 env=env, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        def done_markers(self) -> int:
            return len(list(index.rglob("*.done"))) if index.exists() else 0

    yield Cluster()
    for w in workers:
        w.stop()


def rows(index: Path) -> list[tuple]:
    """Every frame row of the index: (video_id, pts, embedding rounded)."""
    con = duckdb.connect(str(index / "catalog.duckdb"), read_only=True)
    try:
        got = con.execute("SELECT video_id, pts, embedding FROM frames ORDER BY video_id, pts").fetchall()
    finally:
        con.close()
    return [(v, p, tuple(np.round(np.asarray(e, dtype=np.float64), 4))) for v, p, e in got]


def check_exactly_once(index: Path, expected_frames: int) -> None:
    got = rows(index)
    keys = [(v, p) for v, p, _ in got]
    assert len(keys) == expected_frames, f"{len(keys)} rows, expected {expected_frames}"
    assert len(set(keys)) == expected_frames, "a frame was stored twice"
    assert not list(index.rglob("*.tmp")), "a temporary shard was left behind"
    for marker in index.rglob("*.done"):
        assert marker.with_suffix(".parquet").is_file()
        assert not marker.with_suffix(".failed").exists()


def submitted(result: subprocess.CompletedProcess) -> dict:
    assert "onnxruntime imported: False" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory) -> Path:
    """3 x 60 s at 25 fps: with --chunk 5 --fps 5, 36 chunks of 25 frames (900 frames)."""
    root = tmp_path_factory.mktemp("long-archive")
    for i in range(3):
        make_video(root / f"v{i}.mp4", 60.0, [(20.0, 30.0, "red")], fps=25, size=(320, 240), seed=i)
    return root


LONG = ("--chunk", "5", "--fps", "5", "--batch-size", "5")
LONG_CHUNKS, LONG_FRAMES = 36, 900


# -- tests ---------------------------------------------------------------------------------
@distributed
@needs_redis
def test_celery_ingest_gives_the_same_rows_as_local(cluster, archive, runner, tmp_path):
    local_index = tmp_path / "local-index"
    run_cli(runner, "--index", local_index, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json")
    # a pickled task is refused by the JSON-only worker (pickle runs code on load)
    from vidsearch.ingest.celery import TASK_NAME, make_celery
    from vidsearch.models.contract import sha256_file
    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.shards import IndexStore

    morning = archive / "cam-a" / "morning.mp4"
    bait = ChunkSpec(sha256_file(morning), str(morning), 0.0, 5.0, "fps=1", cluster.model.model_id, 5.0)
    app = make_celery(cluster.redis.url, client=True)
    app.send_task(TASK_NAME, args=[bait.to_dict(), str(cluster.index), 8], serializer="pickle")
    worker = cluster.worker()
    result = cluster.submit(archive, "--chunk", "10")
    assert result.returncode == 0, result.stderr
    rep = submitted(result)
    assert rep["backend"] == "celery" and rep["pending"] == 0 and rep["chunks_failed"] == 0
    assert "Refusing to deserialize untrusted content of type pickle" in worker.output()
    assert not IndexStore(cluster.index).is_done(bait) and not IndexStore(cluster.index).failed_path(bait).exists()
    assert rep["chunks_done"] == 10 and rep["frames"] == sum(int(d) for d, _ in ARCHIVE.values())
    celery_rows, local_rows = rows(cluster.index), rows(local_index)
    assert len(celery_rows) == 95 and set(celery_rows) == set(local_rows)
    # the queries give the same answer
    q = json.loads(run_cli(runner, "--index", cluster.index, "query", "red", "--json").stdout)["ranges"]
    assert {(Path(r["path"]).name, r["start"], r["end"]) for r in q} == {("morning.mp4", 10.0, 18.0), ("noon.mp4", 20.0, 26.0)}
    # a second run finds everything done and sends nothing
    again = submitted(cluster.submit(archive, "--chunk", "10"))
    assert again["chunks_skipped"] == 10 and again["chunks_done"] == 0


@distributed
@needs_redis
def test_worker_killed_mid_chunk_every_chunk_done_exactly_once(cluster, long_archive):
    """--no-wait, one worker SIGKILLed while it runs a chunk and just after it popped the next task
    from the queue (before recording it as delivered); a worker started after the kill redoes
    both (lease reaper, list of sent tasks): every chunk done exactly once, with the default
    settings, well within 90 s of the kill."""
    # queue everything first (no worker yet): status reports it pending, per video
    result = cluster.submit(long_archive, *LONG, "--no-wait")
    assert result.returncode == 0, result.stderr
    assert submitted(result)["pending"] == LONG_CHUNKS
    st = cluster.status()
    assert st["chunks"] == {"done": 0, "pending": LONG_CHUNKS, "failed": 0, "partial": 0}
    assert sorted(v["pending"] for v in st["per_video"]) == [12, 12, 12]

    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.shards import IndexStore
    from vidsearch.ingest.leases import LEASES_KEY

    store = IndexStore(cluster.index)
    r = cluster.redis.client()
    worker, held = cluster.worker(), None
    deadline = time.time() + 120
    while time.time() < deadline and held is None:  # frozen while it holds a lease on an unfinished chunk
        mine = [x for x in map(json.loads, r.hvals(LEASES_KEY)) if not x.get("finished")]
        if cluster.done_markers() < 3 or not mine:
            time.sleep(0.02)
            continue
        os.killpg(worker.proc.pid, signal.SIGSTOP)
        spec = {m["headers"]["id"]: json.loads(base64.b64decode(m["body"]))[0][0]
                for m in (json.loads(raw)[0] for raw in r.hvals("unacked"))}.get(mine[0]["task_id"])
        if spec is not None and not store.is_done(ChunkSpec.from_dict(spec)):
            held = mine[0]["task_id"], ChunkSpec.from_dict(spec)
        else:
            os.killpg(worker.proc.pid, signal.SIGCONT)
    assert held, "the worker was never caught running a chunk"
    worker.kill()
    killed_at = time.time()
    # the task it would have taken next, popped by its last BRPOP and not yet recorded as
    # delivered: a worker killed in that instant takes the task with it
    popped = json.loads(r.rpop("embed"))
    popped_spec = ChunkSpec.from_dict(json.loads(base64.b64decode(popped["body"]))[0][0])
    done_at_kill = cluster.done_markers()
    assert 3 <= done_at_kill < LONG_CHUNKS - 2, "the kill should land mid-archive"
    st = cluster.status()
    assert st["chunks"]["done"] == done_at_kill and st["chunks"]["pending"] == LONG_CHUNKS - done_at_kill

    second = cluster.worker()
    # nobody waits (--no-wait): the new worker's reaper notices the dead worker's chunk and the
    # task it took with it; the visibility timeout (one hour by default) plays no part
    deadline = killed_at + 90
    while time.time() < deadline and cluster.done_markers() < LONG_CHUNKS:
        time.sleep(0.2)
    redone_s = time.time() - killed_at
    st = cluster.status()
    assert st["chunks"] == {"done": LONG_CHUNKS, "pending": 0, "failed": 0, "partial": 0}, second.output()[-3000:]
    print(f"every chunk done {redone_s:.1f}s after the kill")
    assert st["frames"] == LONG_FRAMES and st["running"] == []
    log = second.output()
    held_task, held_spec = held
    assert f"{held_spec.path} [{held_spec.start:.0f}-{held_spec.end:.0f}s]: {worker.name} on " in log  # its lease
    assert f"worker {worker.name} has not renewed its record for 20s (dead?)" in log
    assert f"{popped_spec.path} [{popped_spec.start:.0f}-{popped_spec.end:.0f}s]: taken from the queue by a " \
           "worker that died before recording it; sent it again" in log
    assert held_task in log and popped["headers"]["id"] in log and "Traceback" not in log
    check_exactly_once(cluster.index, LONG_FRAMES)
    deadline = time.time() + 60
    while time.time() < deadline and (r.hlen("unacked") or r.hlen("vidsearch:tasks")):
        time.sleep(0.2)
    assert r.hlen("unacked") == 0 and r.llen("embed") == 0 and r.hlen("vidsearch:tasks") == 0
    assert r.hkeys("vidsearch:workers") == [second.name.encode()]  # the dead worker's record is dropped
    second.stop()
    assert r.hlen("vidsearch:workers") == 0  # a worker that stops drops its own


@distributed
@needs_redis
def test_redis_restart_during_ingest_completes(cluster, long_archive):
    worker = cluster.worker()
    proc = cluster.submit(long_archive, *LONG, wait=False)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and cluster.done_markers() < 3:
            time.sleep(0.02)
        assert cluster.done_markers() < LONG_CHUNKS, "the outage should land mid-archive"
        cluster.redis.stop()
        time.sleep(2)
        assert cluster.done_markers() < LONG_CHUNKS
        cluster.redis.start()  # same port, same append-only file: the queue is still there
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + worker.output()[-3000:]
    rep = submitted(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert rep["chunks_done"] == LONG_CHUNKS and rep["pending"] == 0 and rep["chunks_failed"] == 0
    assert rep["frames"] == LONG_FRAMES
    check_exactly_once(cluster.index, LONG_FRAMES)
    # the worker logs the lost connection in one line and goes on: no traceback (gossip, mingle)
    log = worker.output()
    assert "Connection to broker lost" in log and "Traceback" not in log and "Gossip" not in log, log[-3000:]


@distributed
@needs_redis
def test_a_task_lost_by_the_broker_is_sent_again(cluster, archive):
    """Redis pops a task before recording it as unacknowledged; a broker dying in between loses it.
    The waiting submitter notices a chunk whose task is nowhere and sends it again."""
    proc = cluster.submit(archive, "--chunk", "10", wait=False)
    try:
        r = cluster.redis.client()
        deadline = time.time() + 60
        while time.time() < deadline and r.llen("embed") < 10:
            time.sleep(0.05)
        lost = json.loads(r.rpop("embed"))  # the next task a worker would have taken
        lost_chunk = json.loads(base64.b64decode(lost["body"]))[0][0]
        cluster.worker()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    rep = submitted(subprocess.CompletedProcess(proc.args, 0, out, err))
    assert "the broker lost 1 queued chunks" in err
    assert rep["chunks_done"] == 10 and rep["pending"] == 0
    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.shards import IndexStore

    assert IndexStore(cluster.index).is_done(ChunkSpec.from_dict(lost_chunk))
    check_exactly_once(cluster.index, 95)


@distributed
@needs_redis
def test_a_task_lost_with_nobody_waiting_and_no_worker_dying_is_sent_again(cluster, archive):
    """--no-wait, and a task popped from the queue whose reply never reached a worker (a dropped
    connection, a broker dying mid-pop): no worker dies and nobody waits, yet a live worker's
    reaper sends it again once it has been nowhere for the lease time; every chunk done once."""
    result = cluster.submit(archive, "--chunk", "10", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert submitted(result)["pending"] == 10
    r = cluster.redis.client()
    lost = json.loads(r.rpop("embed"))  # the next task a worker would have taken
    spec = json.loads(base64.b64decode(lost["body"]))[0][0]
    worker, t0 = cluster.worker(), time.time()
    while time.time() < t0 + 90 and cluster.done_markers() < 10:
        time.sleep(0.2)
    took = time.time() - t0
    st = cluster.status()
    assert st["chunks"] == {"done": 10, "pending": 0, "failed": 0, "partial": 0}, worker.output()[-3000:]
    print(f"the lost task's chunk done {took:.1f}s after the worker started")
    log = worker.output()
    assert f"{spec['path']} [{spec['start']:.0f}-{spec['end']:.0f}s]: neither queued nor held by a worker for 20s " \
           "(lost by the broker or a dropped connection); sent it again" in log
    assert log.count("sent it again") == 1 and "Traceback" not in log
    check_exactly_once(cluster.index, 95)
    deadline = time.time() + 30
    while time.time() < deadline and (r.hlen("unacked") or r.hlen("vidsearch:tasks")):
        time.sleep(0.2)
    assert r.hlen("unacked") == 0 and r.llen("embed") == 0 and r.hlen("vidsearch:tasks") == 0


@distributed
@needs_redis
def test_corrupt_files_are_reported_and_do_not_stall_the_queue(cluster, archive):
    bad = archive / "bad"
    bad.mkdir()
    (bad / "notes.mp4").write_text("this is not a video\n" * 50)  # found by the submitter's probe
    ts = make_video(bad / "broadcast.mkv", 30.0, [(2.0, 8.0, "orange")], seed=5)
    data = ts.read_bytes()
    ts.write_bytes(data[: int(len(data) * 0.45)])  # header says 30 s: the worker finds the rest missing
    # a chunk that (we pretend) killed its worker three times already: a poison task
    from vidsearch.models.contract import sha256_file
    from vidsearch.core.plan import Sampling, plan_video
    from vidsearch.index.shards import IndexStore

    store = IndexStore(cluster.index)
    evening = archive / "cam-b" / "evening.mp4"
    poison = plan_video(sha256_file(evening), str(evening), 25.0, cluster.model.model_id, Sampling(), 10.0)[1]
    store.chunk_dir(poison).mkdir(parents=True)
    (store.chunk_dir(poison) / f".{poison.name}.running").write_text("3")

    cluster.worker()
    result = cluster.submit(archive, "--chunk", "10")
    assert result.returncode == 3, result.stderr  # the good videos were indexed, some files failed
    rep = submitted(result)
    assert rep["pending"] == 0
    errors = "\n".join(f["error"] for f in rep["failures"])
    assert "notes.mp4: not a readable video" in errors
    assert "broadcast.mkv: no frames could be decoded between" in errors
    assert "evening.mp4: a worker died 3 times while embedding [10-20s]" in errors
    assert rep["chunks_failed"] >= 2 and rep["chunks_done"] + rep["chunks_failed"] == 10 + 3
    st = cluster.status()
    assert st["chunks"]["pending"] == 0
    per_video = {Path(v["path"]).name: v for v in st["per_video"]}
    assert per_video["morning.mp4"]["done"] == 4 and per_video["noon.mp4"]["done"] == 3
    assert per_video["evening.mp4"]["failed"] == 1 and per_video["broadcast.mkv"]["failed"] >= 1
    assert {Path(f["path"]).name for f in st["failed_files"]} == {"notes.mp4"}
    # re-running sends the failed chunks again; the poison counter was reset, so that one now succeeds
    again = submitted(cluster.submit(archive, "--chunk", "10"))
    assert again["chunks_done"] == 1 and again["chunks_failed"] == rep["chunks_failed"] - 1


@pytest.mark.distributed("celery", "redis")
def test_unreachable_broker_is_one_line_naming_the_url(home, colour, archive):
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    env = {**os.environ, "VIDSEARCH_HOME": str(home), "VIDSEARCH_BROKER_URL": url}
    out = subprocess.run(
        [sys.executable, "-m", "vidsearch", "ingest", str(archive), "--model", "demo-colours", "--backend", "celery"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert f"cannot reach the Celery broker at redis://:**@127.0.0.1:{url.rsplit(':', 1)[1]}" in lines[0]
    assert "secret" not in out.stderr
    assert not (home / "index" / "catalog.duckdb").exists()  # nothing was scanned or recorded


def test_worker_without_broker_is_one_line(home):
    env = {k: v for k, v in os.environ.items() if k != "VIDSEARCH_BROKER_URL"}
    env["VIDSEARCH_HOME"] = str(home)
    out = subprocess.run([sys.executable, "-m", "vidsearch", "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == "Error: no Celery broker configured: pass --broker or set VIDSEARCH_BROKER_URL (e.g. redis://HOST:6379/0)"


@pytest.mark.distributed("celery", "redis")
def test_celery_app_settings():
    from vidsearch.ingest.celery import QUEUE, TASK_NAME, make_celery

    app = make_celery("redis://127.0.0.1:1/0", visibility_timeout_s=120)
    c = app.conf
    assert c.accept_content == ["json"] and c.task_serializer == "json" and c.result_serializer == "json"
    assert c.task_acks_late and c.task_reject_on_worker_lost and c.worker_prefetch_multiplier == 1
    assert c.broker_transport_options["visibility_timeout"] == 120
    assert c.task_time_limit < 120  # a task never outlives its visibility timeout
    assert c.task_routes[TASK_NAME]["queue"] == QUEUE
    assert c.result_backend == "redis://127.0.0.1:1/0"


def _write_same_shard(root: str, seed: int, n: int, errors_file: str) -> None:
    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.shards import IndexStore

    spec = ChunkSpec("ab" * 32, "/archive/x.mp4", 0.0, 5.0, "fps=1", "m@000000000001", 5.0)
    store = IndexStore(root)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(n):
        try:
            store.write_shard(spec, np.arange(200.0), rng.random((200, 16), dtype=np.float32), extra={"writer": seed})
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")
    Path(errors_file).write_text("\n".join(errors))


def test_concurrent_deliveries_of_one_chunk_leave_one_complete_shard(tmp_path):
    """Two deliveries of a chunk can run at once (a worker presumed dead, still running): the shard
    and marker another process reads are always complete, never mixed, and nothing fails."""
    import pyarrow.parquet as pq

    from vidsearch.core.plan import ChunkSpec
    from vidsearch.index.shards import IndexStore

    spec = ChunkSpec("ab" * 32, "/archive/x.mp4", 0.0, 5.0, "fps=1", "m@000000000001", 5.0)
    store = IndexStore(tmp_path / "index")
    ctx = multiprocessing.get_context("spawn")
    error_files = [tmp_path / f"errors-{seed}.txt" for seed in (1, 2, 3)]
    procs = [
        ctx.Process(target=_write_same_shard, args=(str(store.root), seed, 150, str(f)))
        for seed, f in zip((1, 2, 3), error_files)
    ]
    for p in procs:
        p.start()
    bad, reads = [], 0
    while any(p.is_alive() for p in procs):
        try:
            table = pq.read_table(store.shard_path(spec))
            reads += 1
            if table.num_rows != 200 or len(set(table.column("pts").to_pylist())) != 200:
                bad.append(f"shard with {table.num_rows} rows")
        except FileNotFoundError:
            pass
        try:
            json.loads(store.marker_path(spec).read_text())
        except FileNotFoundError:
            pass
        except ValueError as e:
            bad.append(f"partial marker: {e}")
    for p in procs:
        p.join()
        assert p.exitcode == 0
    errs = [line for f in error_files for line in f.read_text().splitlines()]
    assert not errs, f"{len(errs)} writes failed, e.g. {errs[0]}"
    assert not bad, f"{len(bad)} bad reads, e.g. {bad[0]}"
    assert reads > 0
    assert pq.read_table(store.shard_path(spec)).num_rows == 200
    assert sorted(p.name for p in store.chunk_dir(spec).iterdir()) == sorted(
        [store.shard_path(spec).name, store.marker_path(spec).name]
    ), "temporary files were left behind"
