"""What the server keeps warm between requests: encoders, frame matrices, video paths, temp space."""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from vidsearch.errors import UserError
from vidsearch.evidence.cases import CaseStore
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore

VIDEO_ID = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class NotFound(UserError):
    """Something asked for by id is not in the index (HTTP 404)."""


class Warm:
    """Per-server state. Every lookup from a request goes through an id checked against the catalog."""

    def __init__(self, index_root: str | Path, providers: str | None = None, refresh_s: float = 5.0,
                 upload_limit: int = 20 * 1024 * 1024):
        self.store = IndexStore(index_root)
        self.cases = CaseStore(self.store.root)
        self.providers = providers
        self.refresh_s = refresh_s
        self.upload_limit = upload_limit
        self.tmp = Path(tempfile.mkdtemp(prefix="vidsearch-serve-"))
        self._lock = threading.Lock()
        self._encoders: dict[str, object] = {}
        self._indexes: dict[str, tuple[float, object]] = {}
        self._paths: tuple[float, dict[str, str]] = (0.0, {})

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- models --------------------------------------------------------------------------------
    def model(self, requested: str | None):
        from vidsearch.query.models import pick_model

        return pick_model(self.store, requested or None)

    def encoder(self, requested: str | None = None):
        info = self.model(requested)
        with self._lock:
            if info.model_id not in self._encoders:
                from vidsearch.models.encoder import Encoder

                self._encoders[info.model_id] = Encoder(info, providers=self.providers)
            return self._encoders[info.model_id]

    def frame_index(self, model_id: str):
        """The search matrix of ``model_id``, re-checked against the shards at most every ``refresh_s``."""
        from vidsearch.query.engine import load_frame_index

        with self._lock:
            at, index = self._indexes.get(model_id, (0.0, None))
            if index is None or time.monotonic() - at > self.refresh_s:
                index = load_frame_index(self.store, model_id)
                self._indexes[model_id] = (time.monotonic(), index)
            return index

    # -- files -----------------------------------------------------------------------------------
    def video_path(self, video_id: str) -> str:
        """The indexed file of ``video_id``; only ids the catalog knows resolve (no paths from requests)."""
        if not VIDEO_ID.match(video_id or ""):
            raise NotFound("no such video")
        at, paths = self._paths
        if video_id not in paths and time.monotonic() - at > 1.0 and self.store.catalog_path.exists():
            with Catalog(self.store, read_only=True) as cat:
                paths = cat.video_paths()
            self._paths = (time.monotonic(), paths)
        path = paths.get(video_id)
        if not path or not Path(path).is_file():
            raise NotFound("no such video in the index (or its file is gone)")
        return path

    def upload_dir(self) -> Path:
        d = self.tmp / "uploads"
        d.mkdir(exist_ok=True)
        return d

    def upload_path(self, upload_id: str) -> str:
        p = self.upload_dir() / f"{upload_id}.img"
        if not UPLOAD_ID.match(upload_id or "") or not p.is_file():
            raise NotFound(f"no uploaded image {upload_id[:40]!r}: upload it again")
        return str(p)

    def clip_dir(self) -> Path:
        d = self.tmp / "clips"
        d.mkdir(exist_ok=True)
        return d
