"""Text embeddings of prompts, cached on disk per model: a repeated query needs no text tower.

Creating the text tower's ONNX Runtime session and tokenizing cost a query ~0.4 s, more than
the search itself. Each prompt's unit embedding is kept as raw float32 bytes under
``$VIDSEARCH_HOME/cache/prompts/<model slug>/<sha256(model id, text tower stat, prompt)>.f32``:
the model id names the weights, and the text tower file's size, mtime and inode are part of
the key, so a tower changed on disk misses the cache, is loaded, and is refused by its
SHA-256 check as before (:mod:`vidsearch.models.verify`). :class:`CachedTextEncoder`
stands in for an :class:`~vidsearch.models.encoder.Encoder`: it opens the real one only for
prompts it has not seen, and for anything else (example images).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vidsearch.index.shards import model_slug
from vidsearch.models.contract import TEXT_FILE
from vidsearch.settings import current


def cache_dir(model_id: str) -> Path:
    return current().home / "cache" / "prompts" / model_slug(model_id)


def tower_stamp(info) -> str:
    """Size, mtime and inode of the model's text tower ("" when it cannot be stat'ed: no caching)."""
    try:
        st = os.stat(Path(info.path) / TEXT_FILE)
    except (OSError, TypeError):
        return ""
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"


def _path(model_id: str, stamp: str, prompt: str) -> Path:
    key = hashlib.sha256(f"{model_id}\n{stamp}\n{prompt}".encode()).hexdigest()[:40]
    return cache_dir(model_id) / f"{key}.f32"


def load(model_id: str, stamp: str, prompt: str, dim: int) -> np.ndarray | None:
    if not stamp:
        return None
    try:
        v = np.fromfile(_path(model_id, stamp, prompt), dtype=np.float32)
    except OSError:
        return None
    return v if len(v) == dim else None


def store(model_id: str, stamp: str, prompt: str, vec: np.ndarray) -> None:
    """Best effort: a read-only home just means no cache."""
    if not stamp:
        return
    path = _path(model_id, stamp, prompt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        np.asarray(vec, dtype=np.float32).tofile(tmp)
        tmp.replace(path)
    except OSError:
        pass


class CachedTextEncoder:
    """An encoder whose ``encode_texts`` answers from the prompt cache; ``open_encoder()`` is called
    (once) only when a prompt is new or something else (the image tower) is needed."""

    def __init__(self, info, open_encoder: Callable[[], object]):
        self.info = info
        self._open = open_encoder
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self._open()
        return self._encoder

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        mid, dim, stamp = self.info.model_id, int(self.info.dim), tower_stamp(self.info)
        out = [load(mid, stamp, t, dim) for t in texts]
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            fresh = self.encoder.encode_texts([texts[i] for i in missing])
            for i, v in zip(missing, fresh):
                out[i] = v
                store(mid, stamp, texts[i], v)
        return np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)
