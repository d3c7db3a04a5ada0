"""SHA-256 of a file, read in blocks: the one hash helper for models, videos and evidence."""
from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, bufsize: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(bufsize), b""):
            h.update(block)
    return h.hexdigest()
