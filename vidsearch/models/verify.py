"""Check model files against ``model.json`` where they are loaded, without re-hashing unchanged ones.

The model id comes from the SHA-256s in ``model.json``: a file that no longer matches them would
put its embeddings under the genuine model's id. So every ONNX file is checked before a session
loads it. A full hash costs about a second per 300 MB, so a small record per model directory
(``$VIDSEARCH_HOME/verified/<key>.json``, not in the model directory, which may be read-only or
shared) keeps each file's size, mtime, ctime and inode from its last full check: a file whose
stat is unchanged, and whose recorded hash is still the one ``model.json`` names, is trusted.
A file changed shortly before its check (less than ``RACY_NS``; file times are coarse) is not
recorded, so it is hashed in full again next time.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from vidsearch.errors import ModelError
from vidsearch.models.contract import META_FILE, ModelInfo, check_file
from vidsearch.settings import home

#: Files changed less than this before their full check are hashed again at the next load.
RACY_NS = 2_000_000_000


def _record_path(directory: Path) -> Path:
    key = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return home() / "verified" / f"{key}.json"


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Replace the record atomically; a home we cannot write only costs full hashes later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        pass


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise ModelError(f"cannot read {path} ({e.strerror or e}); reinstall the model") from None


def verify_file(info: ModelInfo, fname: str, *, full: bool = False) -> str:
    """Check ``fname`` of ``info``'s directory against model.json; returns its SHA-256.

    Hashed in full unless the verification record says this very file (same stat) was hashed
    before with the hash model.json names; ``full`` always hashes. A mismatch raises a one-line
    :class:`ModelError` naming the file and both hashes.
    """
    if info.path is None:
        raise ModelError("ModelInfo has no directory")
    directory = Path(info.path)
    expected = info.files.get(fname)
    if not expected:
        raise ModelError(f"{directory / META_FILE} has no sha256 for {fname}; reinstall the model")
    before = _stat(directory / fname)
    rec_path = _record_path(directory)
    record = _read_record(rec_path)
    entry = record.get(fname)
    if not full and isinstance(entry, dict) and entry.get("sha256") == expected and entry.get("stat") == _stat_key(before):
        return expected
    started = time.time_ns()
    stale = record.pop(fname, None) is not None
    try:
        got = check_file(directory, fname, expected)
    except ModelError:
        if stale:
            _write_record(rec_path, record)
        raise
    after = _stat(directory / fname)
    if _stat_key(after) == _stat_key(before) and max(before.st_mtime_ns, before.st_ctime_ns) < started - RACY_NS:
        record[fname] = {"sha256": got, "stat": _stat_key(before)}
        _write_record(rec_path, record)
    elif stale:
        _write_record(rec_path, record)
    return got


def verify_tower(info: ModelInfo, fname: str) -> None:
    """Check an ONNX file about to be loaded, and its external weights (``<fname>.data``...)."""
    verify_file(info, fname)
    for other in info.files:
        if other.startswith(fname + "."):
            verify_file(info, other)


def verify_model_files(info: ModelInfo, *, full: bool = True) -> dict[str, str]:
    """Every file model.json lists, checked now: ``{file name: sha256}`` (for evidence manifests).

    ``full`` (the default) hashes the files as they are at this moment rather than trusting the
    verification record; ``full=False`` is the cheap check the encoders use.
    """
    return {fname: verify_file(info, fname, full=full) for fname in info.files}
