"""Resumable, verified downloads of pinned model files.

A transfer goes to ``<file>.part`` and resumes with an HTTP ``Range`` request; the finished file
is hashed before it is renamed into place, and a file whose hash (or size) does not match its
pin is discarded, never loaded.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from vidsearch import __version__
from vidsearch.core.hashing import sha256_file
from vidsearch.errors import ModelError, TransientError
from vidsearch.models.registry import HUB_URL_ENV

#: longest wait (seconds) between retries of an interrupted download
RETRY_BACKOFF_MAX_S = 30.0

log = logging.getLogger(__name__)

#: ``progress(label, bytes_done, bytes_total_or_None)``
Progress = Callable[[str, int, "int | None"], None]


class _Interrupted(Exception):
    """A transfer that stopped early; what arrived is kept in the .part file."""


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": f"vidsearch/{__version__} (+model pull)", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, expected_size: int | None, label: str, timeout: float, progress: Progress | None) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with Range when part is not empty)."""
    start = part.stat().st_size if part.exists() else 0
    if expected_size is not None and start > expected_size:
        log.info("%s: %s is longer than the expected %d bytes; starting over", label, part, expected_size)
        part.unlink()
        start = 0
    if expected_size is not None and start == expected_size:
        return
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            # Nothing left to send: the part is complete (or not the file at all; the hash decides).
            return
        if e.code in (401, 403, 404, 410):
            raise ModelError(
                f"{label}: {url} answered HTTP {e.code}; the server does not have the expected layout "
                f"<repo>/resolve/<revision>/<path> (check {HUB_URL_ENV} or the registry entry)"
            ) from None
        raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Interrupted(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None
    with resp:
        status = getattr(resp, "status", 200)
        mode = "wb"
        if start and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == start:
                mode = "ab"
            else:
                raise _Interrupted(f"the server resumed at {m.group(1) if m else '?'} instead of byte {start}")
        elif start:
            log.info("%s: server ignored the Range request; downloading from the start", label)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else expected_size
        done = start
        with open(part, mode) as f:
            try:
                while True:
                    block = resp.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(label, done, total)
            except (http.client.IncompleteRead, OSError, socket.timeout, http.client.HTTPException) as e:
                raise _Interrupted(f"connection lost at {done} of {total or '?'} bytes ({type(e).__name__})") from None
        if total is not None and done < total:
            raise _Interrupted(f"connection closed at {done} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    progress: Progress | None = None,
    label: str | None = None,
) -> str:
    """Download ``url`` to ``dest`` through ``dest + '.part'``; returns the file's SHA-256.

    An existing complete ``dest`` with the right hash is reused. A partial ``.part`` is resumed
    with an HTTP Range request (or restarted when the server ignores it). The finished file is
    hashed before it is renamed to ``dest``: a mismatch with ``sha256`` (or ``size``) deletes
    it and raises :class:`ModelError`. A transfer that keeps failing after ``retries`` retries
    raises :class:`TransientError` and leaves the ``.part`` for the next attempt.
    """
    dest = Path(dest)
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        got = sha256_file(dest)
        if sha256 is None or got == sha256:
            return got
        dest.unlink()
    attempt = 0
    while True:
        try:
            _transfer(url, part, size, label, timeout, progress)
            break
        except _Interrupted as e:
            if attempt >= retries:
                have = part.stat().st_size if part.exists() else 0
                raise TransientError(
                    f"download of {label} failed: {e}; {have} bytes kept in {part}, run the same command again to resume"
                ) from None
            attempt += 1
            log.warning("%s: %s; retrying (%d/%d)", label, e, attempt, retries)
            time.sleep(min(2.0 ** attempt, RETRY_BACKOFF_MAX_S))
    got = sha256_file(part)
    have = part.stat().st_size
    if (sha256 is not None and got != sha256) or (size is not None and have != size):
        part.unlink()
        what = f"sha256 {got[:16]}… != pinned {sha256[:16]}…" if sha256 and got != sha256 else f"{have} bytes != pinned {size}"
        raise ModelError(f"{label} does not match its pin ({what}); the download was discarded and nothing was installed")
    os.replace(part, dest)
    return got
