"""Query engine: score every indexed frame against a query vector, return ranked time ranges."""
from __future__ import annotations

import dataclasses
import fnmatch
import time
from typing import Sequence

import numpy as np

from .errors import IndexError_, ModelError, UserError
from .model import ModelInfo, installed_models, load_model_info
from .paths import read_config
from .ranges import TimeRange, adaptive_threshold, rank, video_ranges
from .store import IndexStore


@dataclasses.dataclass
class FrameIndex:
    """All frames of one model: video codes, times and the embedding matrix (row-aligned)."""

    model_id: str
    videos: list[str]  # code -> video_id
    codes: np.ndarray  # int32 [N]
    pts: np.ndarray  # float64 [N]
    emb: np.ndarray  # float32 or float16 [N, dim]

    def __len__(self) -> int:
        return len(self.pts)

    def scores(self, query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, dtype=self.emb.dtype)
        return (self.emb @ q).astype(np.float32)

    def rows_by_video(self) -> dict[int, np.ndarray]:
        """Row indices of each video code, in time order."""
        order = np.lexsort((self.pts, self.codes))
        codes = self.codes[order]
        cuts = np.flatnonzero(np.diff(codes)) + 1
        return {int(codes[g[0]]): g for g in np.split(order, cuts) if len(g)} if len(order) else {}


def load_frame_index(store: IndexStore, model_id: str) -> FrameIndex:
    """Read every done shard of ``model_id`` into memory (the Parquet shards are the source of truth)."""
    import pyarrow.parquet as pq

    shards = store.done_shards(model_id)
    videos: dict[str, int] = {}
    codes, pts, embs = [], [], []
    for path in shards:
        t = pq.read_table(path, columns=["video_id", "pts", "embedding"])
        if t.num_rows == 0:
            continue
        vid = t.column("video_id")[0].as_py()
        code = videos.setdefault(vid, len(videos))
        codes.append(np.full(t.num_rows, code, dtype=np.int32))
        pts.append(t.column("pts").to_numpy())
        col = t.column("embedding").combine_chunks()
        embs.append(col.values.to_numpy(zero_copy_only=False).reshape(t.num_rows, col.type.list_size))
    if not embs:
        return FrameIndex(model_id, [], np.zeros(0, np.int32), np.zeros(0), np.zeros((0, 0), np.float32))
    return FrameIndex(model_id, list(videos), np.concatenate(codes), np.concatenate(pts), np.concatenate(embs))


@dataclasses.dataclass
class QueryResult:
    query: str
    model_id: str
    semantics: str
    threshold: float
    frames_scanned: int
    ranges: list[TimeRange]
    seconds: float

    def to_dict(self) -> dict:
        return {
            "query": self.query, "model_id": self.model_id, "semantics": self.semantics,
            "threshold": round(self.threshold, 5) if np.isfinite(self.threshold) else None,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4),
            "ranges": [r.to_dict() for r in self.ranges],
        }


def indexed_models(store: IndexStore) -> list[tuple[str, str]]:
    """(model_id, name) of the models that have frames in this index."""
    if not store.catalog_path.exists():
        return []
    with store.catalog(read_only=True) as cat:
        return cat.con.execute(
            "SELECT DISTINCT m.model_id, m.name FROM models m JOIN chunks c USING (model_id) WHERE c.status = 'done' ORDER BY 1"
        ).fetchall()


def pick_model(store: IndexStore, requested: str | None) -> ModelInfo:
    """The model to query with: the one asked for, else the default, else the only one indexed."""
    have = indexed_models(store)
    if not have:
        raise IndexError_(f"the index at {store.root} has no frames yet: run `vidsearch ingest DIR` first")
    ids = {m for m, _ in have}
    names = ", ".join(f"{n} ({m})" for m, n in have)
    if requested:
        info = load_model_info(requested)
        if info.model_id not in ids:
            raise UserError(
                f"model {info.model_id} has not indexed anything here; this index was built with {names}: "
                f"query with --model {have[0][1]} (or ingest again with --model {requested})"
            )
        return info
    default = read_config().get("default_model")
    candidates = []
    if default:
        try:
            info = load_model_info(default)
            if info.model_id in ids:
                return info
        except ModelError:
            pass
    for info in installed_models():
        if info.model_id in ids:
            candidates.append(info)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"none of the models that built this index is installed ({names}); install it or pass --model DIR")
    raise UserError(f"this index holds several models ({names}); choose one with --model")


def combine(vectors: np.ndarray) -> np.ndarray:
    """Average of unit vectors, re-normalised (prompt ensembling)."""
    v = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def search_vector(
    store: IndexStore,
    index: FrameIndex,
    query_vec: np.ndarray,
    *,
    label: str,
    semantics: str = "clip",
    top: int = 10,
    min_score: float | None = None,
    video_glob: str | None = None,
    smooth_s: float = 3.0,
    scores: np.ndarray | None = None,
) -> QueryResult:
    t0 = time.perf_counter()
    with store.catalog(read_only=True) as cat:
        paths = cat.video_paths()
        durations = dict(cat.con.execute("SELECT video_id, duration FROM videos").fetchall())
    if scores is None:
        scores = index.scores(query_vec) if len(index) else np.zeros(0, np.float32)
    groups = index.rows_by_video()
    if video_glob:
        keep = {c for c, vid in enumerate(index.videos) if _glob_match(paths.get(vid, ""), video_glob)}
        groups = {c: g for c, g in groups.items() if c in keep}
    considered = np.concatenate(list(groups.values())) if groups else np.zeros(0, dtype=np.int64)
    threshold = adaptive_threshold(scores[considered], min_score) if len(considered) else float("inf")
    found: list[TimeRange] = []
    for code, rows in groups.items():
        vid = index.videos[code]
        for r in video_ranges(vid, index.pts[rows], scores[rows], threshold, smooth_s=smooth_s, duration=durations.get(vid)):
            r.path = paths.get(vid)
            found.append(r)
    return QueryResult(
        query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
        frames_scanned=int(len(considered)), ranges=rank(found, top), seconds=time.perf_counter() - t0,
    )


def _glob_match(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) or fnmatch.fnmatch(path, f"*{pattern}*")


def text_query(
    store: IndexStore,
    encoder,
    texts: Sequence[str],
    index: FrameIndex | None = None,
    **kw,
) -> QueryResult:
    """Embed ``texts`` (several prompts are averaged) and search."""
    if not texts or not any(t.strip() for t in texts):
        raise UserError("empty query: say what to look for, e.g. vidsearch query \"person in a red jacket\"")
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    vec = combine(encoder.encode_texts(list(texts)))
    if not np.any(vec):
        # e.g. the colour demo model asked about something that is not a colour
        return QueryResult(" | ".join(texts), index.model_id, encoder.info.semantics, float("inf"), len(index), [], 0.0)
    return search_vector(store, index, vec, label=" | ".join(texts), semantics=encoder.info.semantics, **kw)
