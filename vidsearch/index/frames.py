"""The frames of one image model as a query scores them: video codes, times, embeddings (row-aligned).

Loaded from the float16 search matrix (:mod:`vidsearch.index.matrix`, brought up to date with the
shards first), or straight from the Parquet shards where the index cannot be written.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import mmap
from pathlib import Path

import numpy as np

from vidsearch.index.matrix import MatrixCache, matvec
from vidsearch.index.shards import IndexStore

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameIndex:
    """All frames of one model: video codes, times and the embedding matrix (row-aligned)."""

    model_id: str
    videos: list[str]  # code -> video_id
    codes: np.ndarray  # int32 [N]
    pts: np.ndarray  # float64 [N]
    emb: np.ndarray  # float32 or float16 [N, dim]; a np.memmap when loaded from the matrix cache
    #: rows_by_video(), once built (from ``segments`` when the matrix cache gave them: no sort per query)
    video_rows: dict[int, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    #: int64 [S, 3] ``(code, row0, n)`` runs, each video's in time order (the matrix cache's layout)
    segments: np.ndarray | None = dataclasses.field(default=None, repr=False)
    #: the matrix file behind ``emb`` and its generation (what the flat scan and the coarse stage map)
    emb_path: Path | None = dataclasses.field(default=None, repr=False)
    gen: int = 0
    #: opened on first use: the faiss flat scan of ``emb_path``, the coarse stage of its generation
    _stages: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def empty(cls, model_id: str) -> "FrameIndex":
        return cls(model_id, [], np.zeros(0, np.int32), np.zeros(0), np.zeros((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.pts)

    def scores(self, query: np.ndarray) -> np.ndarray:
        return matvec(self.emb, query)

    def rows_by_video(self) -> dict[int, np.ndarray]:
        """Row indices of each video code, in time order."""
        if self.video_rows is None:
            self.video_rows = self._rows_by_video()
        return dict(self.video_rows)

    def _rows_by_video(self) -> dict[int, np.ndarray]:
        if self.segments is not None:
            groups: dict[int, list[np.ndarray]] = {}
            for code, r0, n in self.segments.tolist():
                groups.setdefault(code, []).append(np.arange(r0, r0 + n, dtype=np.int64))
            return {c: (g[0] if len(g) == 1 else np.concatenate(g)) for c, g in groups.items()}
        order = np.lexsort((self.pts, self.codes))
        codes = self.codes[order]
        cuts = np.flatnonzero(np.diff(codes)) + 1
        return {int(codes[g[0]]): g for g in np.split(order, cuts) if len(g)} if len(order) else {}

    def flat_scan(self):
        """The fused exact scan of this matrix (:mod:`vidsearch.index.flatscan`), or None."""
        if "flat" not in self._stages:
            from vidsearch.index.flatscan import open_flat

            dtype = str(self.emb.dtype)
            self._stages["flat"] = open_flat(self.emb_path, len(self), self.emb.shape[1] if self.emb.ndim == 2 else 0, dtype)
        return self._stages["flat"]

    def random_access(self) -> np.ndarray:
        """``emb`` mapped for scattered reads (``MADV_RANDOM``: no read-ahead; a candidate row read from
        disk costs one page, not the kernel's 128 KiB window)."""
        if self._stages.get("flat") is not None:
            return self._stages["flat"].matrix  # already mapped (and its page tables filled)
        if "random" not in self._stages:
            emb = self.emb
            if self.emb_path is not None and isinstance(emb, np.memmap) and len(self):
                emb = np.memmap(self.emb_path, dtype=self.emb.dtype, mode="r", shape=self.emb.shape)
                madvise = getattr(getattr(emb, "_mmap", None), "madvise", None)
                if madvise is not None and hasattr(mmap, "MADV_RANDOM"):
                    madvise(mmap.MADV_RANDOM)
            self._stages["random"] = emb
        return self._stages["random"]

    def coarse_stage(self, min_rows: int | None = None):
        """The compressed first stage of this matrix generation (:mod:`vidsearch.index.coarse`), or None."""
        from vidsearch.index import coarse

        if len(self) < (coarse.MIN_ROWS if min_rows is None else min_rows) or self.emb_path is None:
            return None
        if "coarse" not in self._stages:
            self._stages["coarse"] = coarse.open_coarse(self.emb_path.parent, self.gen, len(self))
        return self._stages["coarse"]

    def video_runs(self) -> dict[int, list[tuple[int, int]]]:
        """``code -> [(row0, n), ...]`` in time order, without building per-row index arrays."""
        if self.segments is None:
            return {c: _runs(g) for c, g in self.rows_by_video().items()}
        out: dict[int, list[tuple[int, int]]] = {}
        for code, r0, n in self.segments.tolist():
            out.setdefault(code, []).append((r0, n))
        return out


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs of a row-index array as ``(row0, n)``."""
    if not len(rows):
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(g[0]), len(g)) for g in np.split(rows, cuts)]


def open_matrix(cache: MatrixCache, refresh: bool = True) -> FrameIndex:
    """The frame index of a matrix cache, memory-mapped (refreshed first)."""
    m = cache.open(refresh=refresh)
    return FrameIndex(cache.model_id, m.videos, m.codes, m.pts, m.emb, m.video_rows, m.segments, m.emb_path, m.gen)


def read_parquet_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Every done shard of ``model_id`` read straight from Parquet into memory (float32; no cache)."""
    import pyarrow.parquet as pq

    videos: dict[str, int] = {}
    codes, pts, embs = [], [], []
    for path in store.done_shards(model_id):
        t = pq.read_table(path, columns=["video_id", "pts", "embedding"])
        if t.num_rows == 0:
            continue
        code = videos.setdefault(t.column("video_id")[0].as_py(), len(videos))
        codes.append(np.full(t.num_rows, code, dtype=np.int32))
        pts.append(t.column("pts").to_numpy())
        col = t.column("embedding").combine_chunks()
        embs.append(col.values.to_numpy(zero_copy_only=False).reshape(t.num_rows, col.type.list_size))
    if not embs:
        return FrameIndex.empty(model_id)
    return FrameIndex(model_id, list(videos), np.concatenate(codes), np.concatenate(pts), np.concatenate(embs))


def load_frame_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Every done shard of ``model_id``, from the search matrix under ``<index>/matrix/`` (memory-mapped
    float16, brought up to date with the Parquet shards first), else straight from Parquet: the
    fallback covers an index directory this process cannot write (a read-only mount)."""
    cache = MatrixCache(store, model_id)
    if not cache.base.is_dir():  # nothing indexed with this model: nothing to build (or to write)
        return FrameIndex.empty(model_id)
    try:
        return open_matrix(cache)
    except OSError as e:
        if not isinstance(e, PermissionError) and e.errno not in (errno.EROFS, errno.EACCES):
            raise
        log.info("search matrix not writable (%s): reading the Parquet shards", e)
    return read_parquet_index(store, model_id)
