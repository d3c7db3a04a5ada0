"""The frames of one image model as a query scores them: video codes, times, embeddings (row-aligned).

With regions (``ingest --regions``) the embedding matrix has a row per region of each frame, and
the rest is per frame: :meth:`FrameIndex.scores` gives each frame the best score of its regions.

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

from vidsearch.core.regions import best_of_regions, frame_starts
from vidsearch.errors import first_line
from vidsearch.index.matrix import MatrixCache, matvec, read_boxes
from vidsearch.index.shards import IndexStore, shard_problem

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameIndex:
    """All frames of one model: video codes and times (per frame) and the embedding matrix (a row per
    frame, or with regions a row per region of each frame, the frame's rows together, region 0 first)."""

    model_id: str
    videos: list[str]  # code -> video_id
    codes: np.ndarray  # int32 [N]
    pts: np.ndarray  # float64 [N]
    emb: np.ndarray  # float32 or float16 [N, dim]; a np.memmap when loaded from the matrix cache
    #: rows_by_video(), once built (from ``segments`` when the matrix cache gave them: no sort per query)
    video_rows: dict[int, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    #: damaged shards left out (shard path -> frames); see :mod:`vidsearch.index.matrix`
    damaged: dict[str, int] | None = dataclasses.field(default=None, repr=False)
    #: with regions: each frame's first ``emb`` row, and the row count at the end ([frames + 1])
    frame_rows: np.ndarray | None = dataclasses.field(default=None, repr=False)
    region: np.ndarray | None = dataclasses.field(default=None, repr=False)  # per ``emb`` row: index into ``boxes``
    boxes: list | None = dataclasses.field(default=None, repr=False)
    #: int64 [S, 3] ``(code, row0, n)`` runs, each video's in time order (the matrix cache's layout)
    segments: np.ndarray | None = dataclasses.field(default=None, repr=False)
    #: the matrix file behind ``emb`` and its generation (what the flat scan and the coarse stage map)
    emb_path: Path | None = dataclasses.field(default=None, repr=False)
    gen: int = 0
    #: opened on first use: the faiss flat scan of ``emb_path``, the coarse stage of its generation
    _stages: dict = dataclasses.field(default_factory=dict, repr=False)

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
        """Each frame's score: the best of its regions' (a frame without regions: its own)."""
        s = matvec(self.emb, query)
        return s if self.frame_rows is None else best_of_regions(s, self.frame_rows)

    @property
    def has_regions(self) -> bool:
        return self.frame_rows is not None

    def whole_frame_rows(self, frames: np.ndarray | None = None) -> np.ndarray | slice:
        """The ``emb`` rows of the whole frames (region 0) of ``frames`` (default: every frame)."""
        if self.frame_rows is None:
            return slice(None) if frames is None else frames
        return self.frame_rows[:-1] if frames is None else self.frame_rows[frames]

    def peak_box(self, frame: int, query: np.ndarray) -> tuple | None:
        """The box of ``frame``'s best region for ``query``; None without regions."""
        if self.frame_rows is None or self.boxes is None:
            return None
        lo, hi = int(self.frame_rows[frame]), int(self.frame_rows[frame + 1])
        best = lo + int(np.argmax(matvec(self.emb[lo:hi], query)))
        return tuple(float(v) for v in self.boxes[int(self.region[best])])

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


def with_regions(index: FrameIndex, region: np.ndarray | None, boxes: list | None) -> FrameIndex:
    """``index`` loaded a row per region (``codes``, ``pts``, ``video_rows`` per row) made per frame;
    unchanged when ``region`` is None (every row a whole frame)."""
    if region is None:
        return index
    starts = frame_starts(region)
    whole = starts[:-1]
    rows_by_video = index.rows_by_video()
    video_rows = {c: np.searchsorted(whole, g[region[g] == 0]) for c, g in rows_by_video.items()}
    segments = index.segments
    if segments is not None and len(segments):  # row runs -> frame runs (a chunk holds whole frames)
        segments = np.asarray(segments, dtype=np.int64)
        first = np.searchsorted(whole, segments[:, 1])
        segments = np.stack([segments[:, 0], first, np.searchsorted(whole, segments[:, 1] + segments[:, 2]) - first], axis=1)
    return dataclasses.replace(index, codes=index.codes[whole], pts=index.pts[whole], video_rows=video_rows,
                               segments=segments, frame_rows=starts, region=region,
                               boxes=list(boxes or [(0.0, 0.0, 1.0, 1.0)]))


def open_matrix(cache: MatrixCache, refresh: bool = True) -> FrameIndex:
    """The frame index of a matrix cache, memory-mapped (refreshed first)."""
    m = cache.open(refresh=refresh)
    index = FrameIndex(cache.model_id, m.videos, m.codes, m.pts, m.emb, m.video_rows, damaged=m.damaged or None,
                       segments=m.segments, emb_path=m.emb_path, gen=m.gen)
    return with_regions(index, m.region, m.boxes)


def read_parquet_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Every done shard of ``model_id`` read straight from Parquet into memory (float32; no cache)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    videos: dict[str, int] = {}
    codes, pts, embs, boxes = [], [], [], []
    damaged: dict[str, int] = {}
    for path, marker in store.done_shard_markers(model_id):
        try:
            data = pa.py_buffer(path.read_bytes())
            problem = shard_problem(path, marker, data=data)
            if not problem:
                names = pq.read_schema(pa.BufferReader(data)).names
                t = pq.read_table(pa.BufferReader(data),
                                  columns=["video_id", "pts", "embedding", *(["box"] if "box" in names else [])])
        except (OSError, ValueError) as e:
            problem = f"unreadable ({first_line(e)})"
        if problem:
            damaged[str(path)] = int(marker.get("frames") or marker.get("rows") or 0)
            log.info("damaged shard %s: %s; its %d frames are left out", path, problem, damaged[str(path)])
            continue
        if t.num_rows == 0:
            continue
        box = read_boxes(t)
        boxes.append(np.tile(np.float32([0, 0, 1, 1]), (t.num_rows, 1)) if box is None else box)
        code = videos.setdefault(t.column("video_id")[0].as_py(), len(videos))
        codes.append(np.full(t.num_rows, code, dtype=np.int32))
        pts.append(t.column("pts").to_numpy())
        col = t.column("embedding").combine_chunks()
        embs.append(col.values.to_numpy(zero_copy_only=False).reshape(t.num_rows, col.type.list_size))
    if not embs:
        return dataclasses.replace(FrameIndex.empty(model_id), damaged=damaged)
    index = FrameIndex(model_id, list(videos), np.concatenate(codes), np.concatenate(pts), np.concatenate(embs),
                       damaged=damaged)
    table, region = np.unique(np.round(np.concatenate(boxes), 4), axis=0, return_inverse=True)
    full = int(np.flatnonzero((table == [0, 0, 1, 1]).all(1))[0]) if len(table) > 1 else 0
    if len(table) == 1:
        return index
    order = np.r_[full, np.delete(np.arange(len(table)), full)]  # the whole frame is code 0
    code = np.argsort(order)[region.reshape(-1)]
    return with_regions(index, code, [tuple(float(v) for v in table[i]) for i in order])


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
