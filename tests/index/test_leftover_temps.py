"""A writer killed mid-write (SIGKILL, a worker lost) leaves a temp file: the next write of that
chunk, or the next ingest's plan of that video, removes it; a write in progress is left alone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from conftest import run_cli
from vidsearch.core.plan import ChunkSpec
from vidsearch.index.shards import TEMP_MAX_AGE_S, IndexStore, unique_name

ROOT = Path(__file__).resolve().parents[2]
NAME = "from vidsearch.index.shards import unique_name; print(unique_name(), flush=True)"

#: writes a chunk's shard and is killed (SIGKILL) just before the rename that would finish it
KILLED_WRITER = """
import json, os, signal, sys
import numpy as np
from vidsearch.core.plan import ChunkSpec
from vidsearch.index.shards import IndexStore
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
IndexStore(sys.argv[1]).write_shard(ChunkSpec.from_dict(json.loads(sys.argv[2])), np.arange(3.0),
                                    np.ones((3, 4), np.float32))
"""


def python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)


def spec(video_id: str = "ab" * 32) -> ChunkSpec:
    return ChunkSpec(video_id, "/archive/x.mp4", 0.0, 10.0, "fps=1", "tiny-model")


def test_rewriting_a_chunk_removes_what_a_killed_attempt_left(tmp_path):
    store, s = IndexStore(tmp_path), spec()
    p = python(KILLED_WRITER, str(tmp_path), json.dumps(s.to_dict()))
    assert p.wait(60) == -signal.SIGKILL
    d = store.chunk_dir(s)
    left = [n.name for n in d.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".{s.name}.parquet.") and left[0].endswith(".tmp"), left

    live = python(f"{NAME}; import time; time.sleep(120)")  # another delivery of the chunk, mid-write
    try:
        writing = d / f".{s.name}.parquet.{live.stdout.readline().strip()}.tmp"
        writing.write_bytes(b"in progress")
        store.write_shard(s, np.arange(3.0), np.ones((3, 4), np.float32))
        assert sorted(n.name for n in d.iterdir()) == sorted([f"{s.name}.parquet", f"{s.name}.done", writing.name])
    finally:
        live.kill()
        live.wait()


def test_ingest_removes_temps_of_gone_writers_only(home, colour, archive, runner):
    def ingest():
        return json.loads(run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json").stdout)

    ingest()
    d = next((home / "index" / "shards").rglob("0000000000-*.done")).parent
    exited = python(NAME)
    exited_name = exited.stdout.readline().strip()
    exited.wait()
    zombie = python(NAME)  # exits, and is not reaped until the end
    zombie_name = zombie.stdout.readline().strip()
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
    live = python(f"{NAME}; import time; time.sleep(120)")
    try:
        live_name = live.stdout.readline().strip()
        old = time.time() - TEMP_MAX_AGE_S - 60
        temps = {  # name -> removed?
            f".a.parquet.{exited_name}.tmp": True,
            f".b.done.{zombie_name}.tmp": True,
            f".c.parquet.{live_name}.tmp": False,
            f".d.parquet.{unique_name()}.tmp": False,  # this very process
            f".e.parquet.4242@elsewhere-1.{uuid.uuid4().hex}.tmp": False,  # another machine, fresh
            f".f.parquet.4242@elsewhere-1.{uuid.uuid4().hex}.tmp": True,  # another machine, an hour old
            f".g.parquet.{uuid.uuid4().hex}.tmp": False,  # an older version's name, fresh
            f".h.parquet.{uuid.uuid4().hex}.tmp": True,  # an older version's name, an hour old
        }
        for name in temps:
            (d / name).write_bytes(b"partial")
        for name in (".f.parquet.4242@elsewhere-1", ".h.parquet."):
            for p in d.glob(f"{name}*.tmp"):
                os.utime(p, (old, old))
        res = ingest()
        assert res["chunks_done"] == 0 and res["chunks_skipped"] > 0
        assert {n: not (d / n).exists() for n in temps} == temps
        assert len(list(d.glob("*.done"))) == len(list(d.glob("*.parquet")))  # nothing indexed is touched
    finally:
        for p in (live, zombie):
            p.kill()
            p.wait()


def test_every_index_file_written_in_place_removes_a_killed_writers_temp(tmp_path):
    """Catalog facts, tag ranges, text caches: whatever is written through `replacing`."""
    from vidsearch.index.shards import replacing, write_json_atomic

    p = python(NAME)
    dead = p.stdout.readline().strip()
    p.wait()
    final = tmp_path / "current.json"
    left = tmp_path / f".current.json.{dead}.tmp"
    left.write_text("{half")
    other = tmp_path / f".other.json.{dead}.tmp"  # another file's: not this writer's business
    other.write_text("{half")
    write_json_atomic(final, {"ok": 1})
    assert json.loads(final.read_text()) == {"ok": 1} and not left.exists() and other.exists()
    try:
        with replacing(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(["current.json", other.name])
