"""What is in this archive: zero-shot tags over video time (``vidsearch tags``, ``tags build``, ``ingest --tags``).

Tagging is a channel (:mod:`vidsearch.retro.tagchannel`); this module plans and runs its chunks
over what the image model has indexed (incrementally), and reads the tag ranges back, ranked.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Callable, Sequence

import numpy as np

from vidsearch.core.plan import ChunkSpec
from vidsearch.errors import IndexUnusableError, UserError
from vidsearch.index.catalog import Catalog
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.channels import register, sync_catalog
from vidsearch.retro import tagchannel as tc
from vidsearch.retro.tagchannel import Vocabulary

_EPOCH = _dt.datetime(1970, 1, 1)


def choose_vocabulary(store: IndexStore, replace=None, add: Sequence = ()) -> Vocabulary:
    """``--vocab`` (else the default) extended by ``--vocab-add``; with neither, the vocabulary the
    index was last tagged with, else the default."""
    if replace or add:
        return Vocabulary.load(replace, add)
    cur = tc.read_current(store)
    if cur:
        try:
            return tc.load_context(store, cur["channel"]).vocab
        except (UserError, KeyError):
            pass
    return Vocabulary.load()


def prepare_ingest(store: IndexStore, image_model_id: str, vocab: Vocabulary) -> str:
    """Make ``ingest --tags`` tag with ``vocab``: record it in the index and use it for planning.
    Returns the tag channel id."""
    tags_id = tc.channel_id(image_model_id, vocab)
    tc.write_context(store, tags_id, image_model_id, vocab)
    register(tc.TagsChannel(vocab))
    return tags_id


def _image_chunks(store: IndexStore, image_model_id: str) -> tuple[list[ChunkSpec], int]:
    """The done image chunks of a model and their frames."""
    specs, frames = [], 0
    for kind, rec in store.iter_records(image_model_id):
        if kind == "done":
            specs.append(ChunkSpec.from_dict(rec))
            frames += int(rec.get("frames") or 0)
    return specs, frames


def build(store: IndexStore, encoder, vocab: Vocabulary, progress: Callable[[ChunkSpec], None] | None = None) -> dict:
    """Tag every image chunk of ``encoder``'s model not tagged yet with ``vocab``; drop tags of chunks
    no longer indexed; recalibrate and rewrite the ranges when anything changed. Returns a report."""
    t0 = time.perf_counter()
    image_id = encoder.info.model_id
    tags_id = prepare_ingest(store, image_id, vocab)
    ctx = tc.load_context(store, tags_id)
    vecs = tc.tag_vectors(ctx, encoder)
    images, frames = _image_chunks(store, image_id)
    wanted = {s.chunk_id: s for s in (dataclasses.replace(i, model_id=tags_id) for i in images)}
    todo = [s for s in wanted.values() if not store.is_done(s)]
    stale = [ChunkSpec.from_dict(r) for k, r in store.iter_records(tags_id) if k == "done" and r["chunk_id"] not in wanted]
    report = {"channel": tags_id, "image_model_id": image_id, "tags": len(vocab.tags),
              "unknown_tags": int((~np.any(vecs, axis=1)).sum()), "chunks_tagged": 0, "chunks_skipped": len(wanted) - len(todo),
              "chunks_removed": len(stale), "chunks_failed": 0, "frames": 0, "failures": []}
    for spec in todo:  # in this process: the catalog learns them from their markers at the end
        try:
            marker = tc.tag_chunk(spec, store, encoder)
            report["chunks_tagged"] += 1
            report["frames"] += int(marker.get("frames") or 0)
        except UserError as e:
            store.write_failed(spec, str(e))
            report["chunks_failed"] += 1
            report["failures"].append(str(e))
        if progress:
            progress(spec)
    for spec in stale:
        store.remove_chunk(spec)
    with Catalog(store) as cat:
        cat.forget_chunks(s.chunk_id for s in stale)
        sync_catalog(cat, todo)
    cur = tc.read_current(store) or {}
    fresh = (not todo and not stale and cur.get("channel") == tags_id and cur.get("matrix_rows") == frames
             and (store.root / tc.RANGES).exists())
    report["ranges"] = cur.get("ranges", 0) if fresh else tc.refresh_ranges(store, tags_id, encoder)["ranges"]
    report["recalibrated"] = not fresh
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


# -- reading the tags back -------------------------------------------------------------------
@dataclasses.dataclass
class TagSummary:
    tag: str
    seconds: float
    videos: int
    best: float
    ranges: list[dict]

    def to_dict(self) -> dict:
        return {"tag": self.tag, "seconds": round(self.seconds, 3), "videos": self.videos, "ranges_count": len(self.ranges),
                "best_score": round(self.best, 4), "ranges": self.ranges}


@dataclasses.dataclass
class TagsResult:
    channel: str | None
    image_model_id: str | None
    tags: list[TagSummary]
    skipped_no_time: int
    seconds: float

    def to_dict(self) -> dict:
        return {"channel": self.channel, "image_model_id": self.image_model_id, "skipped_no_time": self.skipped_no_time,
                "seconds": round(self.seconds, 4), "tags": [t.to_dict() for t in self.tags]}


def read_ranges(store: IndexStore) -> tuple[list[dict], dict]:
    """Every current tag range as a dict (:func:`tagchannel.ranges_schema` columns) and ``current.json``."""
    import pyarrow.parquet as pq

    cur = tc.read_current(store)
    path = store.root / tc.RANGES
    if cur is None or not path.exists():
        if not store.catalog_path.exists():
            raise IndexUnusableError(f"no index at {store.root}: run `vidsearch ingest DIR` first (or pass --index)")
        raise IndexUnusableError(f"the index at {store.root} has no tags yet: run `vidsearch tags build` (or ingest with --tags)")
    return pq.read_table(path).to_pylist(), cur


def _in_window(rows: list[dict], after, before) -> tuple[list[dict], int]:
    """Ranges recorded in ``[after, before)`` (clipped to it); ranges of videos without a creation
    time are left out and their videos counted."""
    from vidsearch.core.timeparse import parse_when

    after, before = parse_when(after), parse_when(before)
    if after is None and before is None:
        return rows, 0
    lo = after.timestamp() if after else -np.inf
    hi = before.timestamp() if before else np.inf
    out, no_time = [], set()
    for r in rows:
        if r["recorded_at"] is None:
            no_time.add(r["video_id"])
            continue
        t0 = (r["recorded_at"] - _EPOCH).total_seconds()  # stored as naive UTC
        a, b = max(r["start_s"], r["start_s"] + lo - t0), min(r["end_s"], r["start_s"] + hi - t0)
        if b > a + 1e-6:
            out.append({**r, "start_s": a, "end_s": b, "seconds": b - a})
    return out, len(no_time)


def list_tags(store: IndexStore, *, video_glob: str | None = None, video_id: str | None = None, after=None,
              before=None, tag: str | None = None) -> TagsResult:
    """The archive's tags ranked by total time, then number of videos, each with its ranges."""
    from vidsearch.query.engine import _glob_match

    t0 = time.perf_counter()
    rows, cur = read_ranges(store)
    if video_glob:
        rows = [r for r in rows if _glob_match(r["path"] or "", video_glob)]
    if video_id:
        rows = [r for r in rows if r["video_id"] == video_id]
    if tag:
        rows = [r for r in rows if r["tag"].lower() == tag.strip().lower()]
    rows, skipped = _in_window(rows, after, before)
    by_tag: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["path"] or "", r["start_s"])):
        by_tag.setdefault(r["tag"], []).append({
            "video_id": r["video_id"], "path": r["path"], "start": round(r["start_s"], 3), "end": round(r["end_s"], 3),
            "score": round(float(r["score"]), 4), "frames": r["frames"],
            "recorded_at": r["recorded_at"].isoformat() + "Z" if r["recorded_at"] else None})
    tags = [TagSummary(t, sum(x["end"] - x["start"] for x in rs), len({x["video_id"] for x in rs}),
                       max(x["score"] for x in rs), rs) for t, rs in by_tag.items()]
    tags.sort(key=lambda s: (-round(s.seconds, 3), -s.videos, s.tag))
    return TagsResult(cur.get("channel"), cur.get("image_model_id"), tags, skipped, time.perf_counter() - t0)
