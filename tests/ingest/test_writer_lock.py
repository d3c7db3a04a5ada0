"""One writer per index: a second ingest stops with one line naming the running one; readers go on."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import run_cli
from vidsearch.demo.synth import make_video

HOLD = """
import sys, time
from vidsearch.index.lock import writer_lock
with writer_lock(sys.argv[1], "vidsearch ingest"):
    print("locked", flush=True)
    time.sleep(120)
"""


def env(home: Path) -> dict:
    return {**os.environ, "VIDSEARCH_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}


def hold_lock(home: Path) -> subprocess.Popen:
    """Another process holding the index's writer lock, as a running ingest does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home / "index")], stdout=subprocess.PIPE, text=True, env=env(home))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def ingest_args(archive, *extra):
    return ["ingest", str(archive), "--model", "demo-colours", "--chunk", "10", *extra]


def test_a_second_writer_stops_naming_the_running_one_and_readers_go_on(home, colour, archive, runner):
    run_cli(runner, *ingest_args(archive))
    proc = hold_lock(home)
    try:
        res = run_cli(runner, *ingest_args(archive), ok=False)
        assert res.exit_code == 1 and "Traceback" not in res.output
        line = res.stderr.strip().splitlines()[-1]
        assert len(res.stderr.strip().splitlines()) <= 2  # the demo model's note, then the one line
        assert line.startswith("Error: ") and "is being written by vidsearch ingest" in line
        assert f"pid {proc.pid} on {socket.gethostname()}" in line
        verify = run_cli(runner, "status", "--verify", ok=False)  # it rewrites markers: a writer too
        assert verify.exit_code == 1 and f"pid {proc.pid}" in verify.stderr
        # readers never take the lock
        assert json.loads(run_cli(runner, "status", "--json").stdout)["chunks"]["done"] == 10
        assert json.loads(run_cli(runner, "query", "red", "--json").stdout)["ranges"]
    finally:
        proc.kill()  # a killed writer leaves no stale lock: flock goes with the process
        proc.wait()
    rep = json.loads(run_cli(runner, *ingest_args(archive, "--json")).stdout)
    assert rep["chunks_done"] == 0 and rep["chunks_skipped"] == 10


def test_two_ingests_at_once_do_each_chunk_once(home, colour, tmp_path):
    archive = tmp_path / "long"
    for i in range(4):
        make_video(archive / f"v{i}.mp4", 120.0, [(10.0, 20.0, "red")], seed=i)
    cmd = [sys.executable, "-m", "vidsearch", *ingest_args(archive, "--json")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(home)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    ok, stopped = (outs[0], outs[1]) if procs[0].returncode == 0 else (outs[1], outs[0])
    assert json.loads(ok[0])["chunks_done"] == 48
    assert "is being written by vidsearch ingest (pid" in stopped[1] and "Traceback" not in stopped[1]
