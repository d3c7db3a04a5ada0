"""Disk and permission faults are one line, lose nothing written, and the re-run completes.

On a real small tmpfs as the index directory (mounting one needs root: skipped otherwise)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli
from vidsearch.demo.synth import make_video

ADVICE = "no space left on the device: free some space and run the same command again (everything written so far is kept)"


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs, and mounting one needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, headroom: int) -> Path:
    """Fill the file system but ``headroom`` bytes; returns the filler file (delete it to free the space)."""
    filler = mnt / "filler"
    block = b"\0" * (64 * 1024)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - headroom))
    return filler


def done_markers(index: Path) -> dict[str, str]:
    return {str(p): p.read_text() for p in (index / "shards").rglob("*.done")}


def ingest(runner, index, archive, ok=False):
    return run_cli(runner, "--index", index, "ingest", archive, "--model", "demo-colours", "--chunk", "10", "--json", ok=ok)


def add_videos(archive: Path) -> None:
    for i in range(3):
        make_video(archive / "new" / f"n{i}.mp4", 40.0, [(5.0, 15.0, "red")], seed=10 + i)


@pytest.mark.parametrize("headroom", [0, 96 * 1024], ids=["catalog", "shards"])
def test_a_full_disk_is_one_line_loses_nothing_and_the_rerun_completes(home, colour, archive, runner, tmpfs, headroom):
    index = tmpfs / "index"
    ingest(runner, index, archive, ok=True)
    before = done_markers(index)
    add_videos(archive)
    filler = fill(tmpfs, headroom)

    res = ingest(runner, index, archive)
    assert res.exit_code == 1 and "Traceback" not in res.output
    err = [ln for ln in res.stderr.splitlines() if not ln.startswith("note: ")]
    assert len(err) == 1 and err[0].startswith(f"Error: {index}") and err[0].endswith(ADVICE), res.stderr
    after = done_markers(index)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing written before is lost
    assert not list(index.rglob("*.tmp"))  # no half-written file left behind
    st = run_cli(runner, "--index", index, "status")  # status still answers, saying what it could not do
    assert "Traceback" not in st.output
    q = json.loads(run_cli(runner, "--index", index, "query", "red", "--json").stdout)
    assert {Path(r["path"]).name for r in q["ranges"]} >= {"morning.mp4", "noon.mp4"}

    filler.unlink()
    rep = json.loads(ingest(runner, index, archive, ok=True).stdout)
    assert rep["chunks_failed"] == 0 and rep["files_indexed"] == 6
    assert rep["chunks_done"] + rep["chunks_skipped"] == 10 + 12
    assert len(done_markers(index)) == 22
    status = json.loads(run_cli(runner, "--index", index, "status", "--json").stdout)
    assert status["chunks"] == {"done": 22, "pending": 0, "failed": 0, "partial": 0}
    q = json.loads(run_cli(runner, "--index", index, "query", "red", "--json", "-k", "20").stdout)
    assert {Path(r["path"]).name for r in q["ranges"]} >= {"n0.mp4", "n1.mp4", "n2.mp4"}


def test_a_read_only_index_is_one_line_and_readers_go_on(home, colour, archive, runner, tmpfs):
    index = tmpfs / "index"
    ingest(runner, index, archive, ok=True)
    add_videos(archive)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    try:
        res = ingest(runner, index, archive)
        assert res.exit_code == 1 and "Traceback" not in res.output
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith(f"Error: {index}") and "read-only file system: use a writable --index directory" in last
        st = run_cli(runner, "--index", index, "status")
        assert "10 done" in st.stdout and "catalog could not be updated" in st.stderr
        q = json.loads(run_cli(runner, "--index", index, "query", "red", "--json").stdout)
        assert q["ranges"]
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    rep = json.loads(ingest(runner, index, archive, ok=True).stdout)
    assert rep["chunks_done"] == 12 and rep["chunks_skipped"] == 10
