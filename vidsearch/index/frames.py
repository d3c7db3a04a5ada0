"""The frames of one image model as a query scores them: video codes, times, embeddings (row-aligned).

Loaded from the float16 search matrix (:mod:`vidsearch.index.matrix`, brought up to date with the
shards first), or straight from the Parquet shards where the index cannot be written.
"""
from __future__ import annotations

import dataclasses
import errno
import logging

import numpy as np

from vidsearch.index.matrix import MatrixCache, matvec
from vidsearch.errors import first_line
from vidsearch.index.shards import IndexStore, shard_problem

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameIndex:
    """All frames of one model: video codes, times and the embedding matrix (row-aligned)."""

    model_id: str
    videos: list[str]  # code -> video_id
    codes: np.ndarray  # int32 [N]
    pts: np.ndarray  # float64 [N]
    emb: np.ndarray  # float32 or float16 [N, dim]; a np.memmap when loaded from the matrix cache
    #: precomputed rows_by_video() (the matrix cache stores per-video row segments): no sort per query
    video_rows: dict[int, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    #: damaged shards left out (shard path -> frames); see :mod:`vidsearch.index.matrix`
    damaged: dict[str, int] | None = dataclasses.field(default=None, repr=False)

    @property
    def skipped_frames(self) -> int:
        """Frames left out because their shards are damaged."""
        return sum((self.damaged or {}).values())

    @classmethod
    def empty(cls, model_id: str) -> "FrameIndex":
        return cls(model_id, [], np.zeros(0, np.int32), np.zeros(0), np.zeros((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.pts)

    def scores(self, query: np.ndarray) -> np.ndarray:
        return matvec(self.emb, query)

    def rows_by_video(self) -> dict[int, np.ndarray]:
        """Row indices of each video code, in time order."""
        if self.video_rows is not None:
            return dict(self.video_rows)
        order = np.lexsort((self.pts, self.codes))
        codes = self.codes[order]
        cuts = np.flatnonzero(np.diff(codes)) + 1
        return {int(codes[g[0]]): g for g in np.split(order, cuts) if len(g)} if len(order) else {}


def open_matrix(cache: MatrixCache, refresh: bool = True) -> FrameIndex:
    """The frame index of a matrix cache, memory-mapped (refreshed first)."""
    return FrameIndex(cache.model_id, *cache.open(refresh=refresh))


def read_parquet_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Every done shard of ``model_id`` read straight from Parquet into memory (float32; no cache)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    videos: dict[str, int] = {}
    codes, pts, embs = [], [], []
    damaged: dict[str, int] = {}
    for path, marker in store.done_shard_markers(model_id):
        try:
            data = pa.py_buffer(path.read_bytes())
            problem = shard_problem(path, marker, data=data)
            t = None if problem else pq.read_table(pa.BufferReader(data), columns=["video_id", "pts", "embedding"])
        except (OSError, ValueError) as e:
            problem = f"unreadable ({first_line(e)})"
        if problem:
            damaged[str(path)] = int(marker.get("frames") or marker.get("rows") or 0)
            log.info("damaged shard %s: %s; its %d frames are left out", path, problem, damaged[str(path)])
            continue
        if t.num_rows == 0:
            continue
        code = videos.setdefault(t.column("video_id")[0].as_py(), len(videos))
        codes.append(np.full(t.num_rows, code, dtype=np.int32))
        pts.append(t.column("pts").to_numpy())
        col = t.column("embedding").combine_chunks()
        embs.append(col.values.to_numpy(zero_copy_only=False).reshape(t.num_rows, col.type.list_size))
    if not embs:
        return dataclasses.replace(FrameIndex.empty(model_id), damaged=damaged)
    return FrameIndex(model_id, list(videos), np.concatenate(codes), np.concatenate(pts), np.concatenate(embs),
                      damaged=damaged)


def load_frame_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Every done shard of ``model_id``, from the search matrix under ``<index>/matrix/`` (memory-mapped
    float16, brought up to date with the Parquet shards first), else straight from Parquet: the
    fallback covers an index directory this process cannot write (a read-only mount, a full disk)."""
    cache = MatrixCache(store, model_id)
    if not cache.base.is_dir():  # nothing indexed with this model: nothing to build (or to write)
        return FrameIndex.empty(model_id)
    try:
        return open_matrix(cache)
    except OSError as e:
        if not isinstance(e, PermissionError) and e.errno not in (errno.EROFS, errno.EACCES, errno.ENOSPC, errno.EDQUOT):
            raise
        log.info("search matrix not writable (%s): reading the Parquet shards", e)
    return read_parquet_index(store, model_id)
