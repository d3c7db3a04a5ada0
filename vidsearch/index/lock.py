"""One writer per index: an advisory lock (``flock``) on ``<index>/.lock``, held by an ingest.

The lock file holds who has it (pid, host, start time, command) so a second writer can say which
one is running. Readers (``query``, ``status``, ``sql``) never take it. Workers of a distributed
ingest write the shards of the chunks they are given and need no lock: their submitter holds it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from vidsearch.errors import IndexUnusableError

LOCK = ".lock"


def holder(root: Path) -> dict:
    """What the lock file says about the process holding it ({} when it says nothing readable)."""
    try:
        data = json.loads((root / LOCK).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _holder_soon(root: Path, wait_s: float = 1.0) -> dict:
    """:func:`holder`, given a holder that has just taken the lock a moment to write who it is."""
    deadline = time.monotonic() + wait_s
    while True:
        info = holder(root)
        if info.get("pid") or time.monotonic() > deadline:
            return info
        time.sleep(0.02)


def describe(info: dict) -> str:
    if not info.get("pid"):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"])) if info.get("started") else "?"
    return f"{info.get('what', 'another ingest')} (pid {info['pid']} on {info.get('host', '?')}, since {since})"


@contextlib.contextmanager
def writer_lock(root: str | os.PathLike, what: str = "ingest") -> Iterator[None]:
    """Hold the index's writer lock while the block runs; another holder: a one-line
    :class:`~vidsearch.errors.IndexUnusableError` naming it. Released when the process ends, however it ends."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one writer is the user's business
        yield
        return
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)  # unbuffered: nothing left to flush at close
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexUnusableError(f"{root} is being written by {describe(_holder_soon(root))}: wait for it to finish "
                              "(queries and status work meanwhile), or stop it and run this again") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "what": what}
        with contextlib.suppress(OSError):  # who holds it is a courtesy (a full disk may refuse it)
            data = json.dumps(info).encode()
            os.pwrite(fd, data, 0)  # then cut to length: the file is never empty while a holder has it
            os.ftruncate(fd, len(data))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
