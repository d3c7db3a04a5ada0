"""The tags channel: zero-shot tags of every indexed frame, from the image embeddings already stored.

Its chunks carry the id ``tags:<image model hash>:<vocabulary hash>`` (a new image model or
vocabulary tags everything again) and the image chunks' bounds and sampling. A chunk reads the
image shard of the same range (no decoding, no image encoder unless that shard is missing),
scores it against the cached tag text vectors (one matmul) and stores each frame's *candidate*
tags (:mod:`vidsearch.core.tagging`). :meth:`TagsChannel.refresh` then calibrates every tag
against the archive's own scores and writes the ranges the ``tags`` view reads::

    <index>/tags/<channel slug>/vocab.json     image model, tags, templates
    <index>/tags/<channel slug>/text.npy       unit tag text vectors [K, dim] (float32)
    <index>/tags/<channel slug>/calibration.json   per-tag thresholds and what they came from
    <index>/tags/ranges.parquet               the current tag ranges (video, start_s, end_s, tag, score, ...)
    <index>/tags/current.json                 which channel wrote them
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core import tagging
from vidsearch.core.plan import ChunkSpec, Sampling, plan_video
from vidsearch.errors import UserError
from vidsearch.index.channel import ShardView, View
from vidsearch.index.shards import IndexStore, model_slug, read_marker, replacing, shard_schema, write_json_atomic
from vidsearch.retro.classify import DEFAULT_TEMPLATES, check_templates, label_vectors  # the CLIP ensembling

TAGS_DIR = "tags"
PREFIX = "tags:"
RANGES = f"{TAGS_DIR}/ranges.parquet"
CURRENT = f"{TAGS_DIR}/current.json"
CALIBRATION_FRAMES = 20000  # frames of the search matrix the thresholds are computed from
DEFAULT_VOCAB = Path(__file__).resolve().parent.parent / "data" / "tags.txt"


# -- vocabulary ------------------------------------------------------------------------------
def parse_vocab(text: str) -> list[str]:
    """Tags of a vocabulary file: one per line, ``#`` comments and blank lines skipped, first of duplicates kept."""
    out: dict[str, None] = {}
    for line in text.splitlines():
        tag = line.split("#", 1)[0].strip()
        if tag:
            out.setdefault(tag, None)
    return list(out)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    tags: tuple[str, ...]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    @classmethod
    def load(cls, replace: str | os.PathLike | None = None, add: Sequence[str | os.PathLike] = ()) -> "Vocabulary":
        """The default vocabulary, or ``replace``'s, extended by the ``add`` files."""
        tags = parse_vocab(_read(replace or DEFAULT_VOCAB))
        for extra in add:
            tags += [t for t in parse_vocab(_read(extra)) if t not in tags]
        if not tags:
            raise UserError(f"the vocabulary {replace} has no tags: write one tag per line")
        return cls(tuple(tags))

    @property
    def hash(self) -> str:
        key = json.dumps([list(self.tags), list(self.templates), tagging.DEFAULT_RULE.candidate_key()])
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {"tags": list(self.tags), "templates": list(self.templates), "hash": self.hash}


def _read(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read the vocabulary {path}: {e.strerror or e}") from None


def channel_id(image_model_id: str, vocab: Vocabulary) -> str:
    return f"{PREFIX}{hashlib.sha256(image_model_id.encode()).hexdigest()[:12]}:{vocab.hash}"


# -- what a channel id needs, kept in the index ----------------------------------------------
def context_dir(store: IndexStore, tags_id: str) -> Path:
    return store.root / TAGS_DIR / model_slug(tags_id)


def write_context(store: IndexStore, tags_id: str, image_model_id: str, vocab: Vocabulary) -> None:
    d = context_dir(store, tags_id)
    if (d / "vocab.json").exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic(d / "vocab.json", {"channel": tags_id, "image_model_id": image_model_id, **vocab.to_dict()})


@dataclasses.dataclass(frozen=True)
class Context:
    tags_id: str
    image_model_id: str
    vocab: Vocabulary
    dir: Path


def load_context(store: IndexStore, tags_id: str) -> Context:
    d = context_dir(store, tags_id)
    rec = read_marker(d / "vocab.json")
    if rec is None:
        raise UserError(f"the index has no vocabulary for {tags_id}: run `vidsearch tags build`")
    vocab = Vocabulary(tuple(rec["tags"]), tuple(check_templates(rec["templates"])))
    return Context(tags_id, rec["image_model_id"], vocab, d)


def tag_vectors(ctx: Context, encoder=None) -> np.ndarray:
    """The unit tag text vectors [K, dim], computed once per channel (with ``encoder``, the image
    model's) and cached in the index."""
    path = ctx.dir / "text.npy"
    if path.exists():
        return np.load(path)
    if encoder is None or encoder.info.model_id != ctx.image_model_id:
        raise UserError(f"the tag text vectors of {ctx.tags_id} are not computed yet and need model "
                        f"{ctx.image_model_id}: run `vidsearch tags build`")
    vecs, _unknown = label_vectors(encoder, ctx.vocab.tags, ctx.vocab.templates)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.save(f, vecs.astype(np.float32))
    return vecs


# -- one chunk -------------------------------------------------------------------------------
def candidates_schema():
    import pyarrow as pa

    schema = shard_schema(pa.field("tag", pa.string(), nullable=False), pa.field("score", pa.float32(), nullable=False),
                          pa.field("best", pa.bool_(), nullable=False))
    return schema.with_metadata({**schema.metadata, b"vidsearch.channel": b"tags"})


def image_rows(store: IndexStore, spec: ChunkSpec, encoder=None) -> tuple[np.ndarray, np.ndarray]:
    """(pts, embeddings) of the image chunk ``spec``, embedding it first when it is not done yet
    and ``encoder`` (of its model) is at hand."""
    import pyarrow.parquet as pq

    if store.done_marker(spec) is None:
        if encoder is None or encoder.info.model_id != spec.model_id:
            raise UserError(f"{spec.path} [{spec.start:.0f}-{spec.end:.0f}s] has no image embeddings of "
                            f"{spec.model_id} yet: ingest it first")
        from vidsearch.ingest.embed import embed_chunk

        embed_chunk(spec, encoder, store)
    t = pq.read_table(store.shard_path(spec), columns=["pts", "embedding"])
    col = t.column("embedding").combine_chunks()
    emb = col.values.to_numpy(zero_copy_only=False).reshape(t.num_rows, col.type.list_size if t.num_rows else 0)
    return t.column("pts").to_numpy(), emb


def tag_chunk(spec: ChunkSpec, store: IndexStore, encoder=None) -> dict:
    """Score one chunk's frames against the vocabulary and write their candidate tags; returns the
    done marker (skips a chunk already done)."""
    import pyarrow as pa

    done = store.done_marker(spec)
    if done is not None:
        return {**done, "skipped": True}
    t0 = time.perf_counter()
    ctx = load_context(store, spec.model_id)
    vecs = tag_vectors(ctx, encoder)
    pts, emb = image_rows(store, dataclasses.replace(spec, model_id=ctx.image_model_id), encoder)
    scores = emb.astype(np.float32) @ vecs.T if len(pts) else np.zeros((0, len(vecs)), np.float32)
    rows, cols, vals, best = tagging.candidates(scores)
    n = len(rows)
    names = pa.array(list(ctx.vocab.tags), pa.string())
    table = pa.Table.from_arrays([
        pa.array([spec.video_id] * n, pa.string()), pa.array([spec.path] * n, pa.string()),
        pa.array([spec.chunk_id] * n, pa.string()), pa.array(np.asarray(pts, np.float64)[rows], pa.float64()),
        pa.array([spec.model_id] * n, pa.string()), names.take(pa.array(cols)), pa.array(vals, pa.float32()),
        pa.array(best, pa.bool_()),
    ], schema=candidates_schema())
    return store.write_table_shard(spec, table, extra={
        "frames": int(len(pts)), "candidates": n, "seconds": round(time.perf_counter() - t0, 4)})


# -- archive-wide: calibration and ranges ------------------------------------------------------
def ranges_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("video_id", pa.string()), pa.field("path", pa.string()), pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()), pa.field("tag", pa.string()), pa.field("score", pa.float32()),
        pa.field("frames", pa.int32()), pa.field("seconds", pa.float64()),
        pa.field("recorded_at", pa.timestamp("us")), pa.field("model_id", pa.string()),
    ], metadata={b"vidsearch.channel": b"tags"})


def calibrate(store: IndexStore, ctx: Context, encoder=None) -> tuple[np.ndarray, dict]:
    """Per-tag thresholds from a sample of the image model's search matrix; also written to
    ``calibration.json``. Returns (thresholds [K], the record)."""
    from vidsearch.index.frames import load_frame_index

    index = load_frame_index(store, ctx.image_model_id)
    vecs = tag_vectors(ctx, encoder)
    rows = tagging.sample_rows(len(index), CALIBRATION_FRAMES)
    sample = np.asarray(index.emb[rows], dtype=np.float32) if len(rows) else np.zeros((0, vecs.shape[1]), np.float32)
    cal = tagging.calibrate(sample @ vecs.T)
    rec = {"channel": ctx.tags_id, "image_model_id": ctx.image_model_id, "matrix_rows": len(index),
           "rule": tagging.DEFAULT_RULE.to_dict(), "calibrated_at": time.time(), **cal.to_dict(list(ctx.vocab.tags))}
    write_json_atomic(ctx.dir / "calibration.json", rec, indent=None)
    return cal.thresholds, rec


def read_candidates(store: IndexStore, tags_id: str):
    """Every stored candidate of a channel (video_id, path, pts, tag, score) as one Arrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, columns=["video_id", "path", "pts", "tag", "score", "best"]) for p in store.done_shards(tags_id)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({n: pa.array([], t) for n, t in
                         (("video_id", pa.string()), ("path", pa.string()), ("pts", pa.float64()),
                          ("tag", pa.string()), ("score", pa.float32()), ("best", pa.bool_()))})
    return pa.concat_tables(tables)


def build_ranges(cands, tags: Sequence[str], thresholds: np.ndarray, videos: dict[str, tuple], tags_id: str,
                 steps: dict[str, float] | None = None):
    """The ranges table (:func:`ranges_schema`) of the candidates that clear their tag's threshold;
    ``videos``: video_id -> (path, duration, creation_time); ``steps``: each video's sampling step."""
    import pyarrow as pa
    import pyarrow.compute as pc

    code = {t: i for i, t in enumerate(tags)}
    cand_tags = pc.dictionary_encode(cands.column("tag").combine_chunks())
    dict_codes = np.asarray([code.get(t, -1) for t in cand_tags.dictionary.to_pylist()], np.int64)
    tag_code = dict_codes[cand_tags.indices.to_numpy(zero_copy_only=False)] if cands.num_rows else np.zeros(0, np.int64)
    score = cands.column("score").to_numpy()
    best = cands.column("best").to_numpy(zero_copy_only=False).astype(bool)
    keep = (tag_code >= 0) & ((score >= np.asarray(thresholds)[np.maximum(tag_code, 0)]) | best)
    vid = pc.dictionary_encode(cands.column("video_id").combine_chunks())
    vid_code = vid.indices.to_numpy(zero_copy_only=False)
    pts = cands.column("pts").to_numpy()
    out: dict[str, list] = {n: [] for n in ranges_schema().names}
    for v, video_id in enumerate(vid.dictionary.to_pylist()):
        mine = vid_code == v
        path, duration, created = videos.get(video_id, (None, None, None))
        step = (steps or {}).get(video_id) or _step(pts[mine])
        sel = mine & keep
        for r in tagging.tag_ranges(pts[sel], tag_code[sel], score[sel], step, duration):
            for k, val in (("video_id", video_id), ("path", path), ("start_s", r.start), ("end_s", r.end),
                           ("tag", tags[r.tag]), ("score", r.score), ("frames", r.frames),
                           ("seconds", round(r.end - r.start, 6)), ("recorded_at", _recorded(created, r.start)),
                           ("model_id", tags_id)):
                out[k].append(val)
    return pa.Table.from_pydict(out, schema=ranges_schema())


def _step(pts: np.ndarray) -> float:
    from vidsearch.core.ranges import sample_step

    return sample_step(np.unique(pts))


def _recorded(created: str | None, offset: float) -> _dt.datetime | None:
    from vidsearch.core.timeparse import parse_creation_time

    t = parse_creation_time(created)
    return None if t is None else (t + _dt.timedelta(seconds=offset)).astimezone(_dt.timezone.utc).replace(tzinfo=None)


def write_ranges(store: IndexStore, table, current: dict) -> Path:
    """Replace ``tags/ranges.parquet`` (temp file + rename), then ``tags/current.json``."""
    import pyarrow.parquet as pq

    final = store.root / RANGES
    final.parent.mkdir(parents=True, exist_ok=True)
    with replacing(final) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json_atomic(store.root / CURRENT, current)
    return final


def read_current(store: IndexStore) -> dict | None:
    return read_marker(store.root / CURRENT)


def refresh_ranges(store: IndexStore, tags_id: str, encoder=None) -> dict:
    """Calibrate ``tags_id`` against the archive, write its ranges and point the ``tags`` view at them."""
    from vidsearch.index.catalog import Catalog

    t0 = time.perf_counter()
    ctx = load_context(store, tags_id)
    thresholds, cal = calibrate(store, ctx, encoder)
    with Catalog(store, read_only=True) as cat:
        meta = {v: (p, d, c) for v, p, d, c in cat.video_meta()}
    steps = {}
    for kind, rec in store.iter_records(tags_id):
        samp = Sampling.parse(rec["sampling"])
        if kind == "done" and samp.mode == "fps":
            steps[rec["video_id"]] = 1.0 / samp.fps
    table = build_ranges(read_candidates(store, tags_id), ctx.vocab.tags, thresholds, meta, tags_id, steps)
    current = {"channel": tags_id, "image_model_id": ctx.image_model_id, "vocab_hash": ctx.vocab.hash,
               "tags": len(ctx.vocab.tags), "ranges": table.num_rows, "matrix_rows": cal["matrix_rows"],
               "written_at": time.time()}
    write_ranges(store, table, current)
    with Catalog(store) as cat:
        cat.refresh_views([TAGS])
    return {**current, "seconds": round(time.perf_counter() - t0, 4)}


class TagsChannel:
    """Zero-shot tags as a channel (:class:`vidsearch.index.channel.Channel`)."""

    name = "tags"
    report_key = "tag_frames"  # frames tagged
    needs_encoder = True  # only when the image chunk is missing or the text vectors are not cached

    def __init__(self, vocab: Vocabulary | None = None):
        self._vocab = vocab

    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            self._vocab = Vocabulary.load()
        return self._vocab

    def owns(self, model_id: str) -> bool:
        return model_id.startswith(PREFIX)

    def model_id(self, model) -> str:
        return channel_id(model.model_id, self.vocab)

    def plan(self, video_id: str, path: str, duration: float, model_id: str, sampling: Sampling, chunk_s: float) -> list[ChunkSpec]:
        return plan_video(video_id, path, duration, model_id, sampling, chunk_s)  # the image chunks' bounds

    def start(self, spec: ChunkSpec, encoder, batch_size: int) -> None:
        return None

    def process(self, spec: ChunkSpec, store: IndexStore, encoder=None, batch_size: int = 32, started=None) -> dict:
        return tag_chunk(spec, store, encoder)

    def shard_schema(self, dim: int | None = None):
        return candidates_schema()

    def views(self, models: Sequence[tuple[str, int]]) -> list[View]:
        """``tags``: the current tag ranges (empty before the first ``vidsearch tags build``)."""
        return [ShardView("tags", None, ranges_schema(), path=RANGES)]

    def refresh(self, store: IndexStore, model_id: str) -> dict:
        if not store.has_shards(model_id):
            return {"channel": model_id, "ranges": 0}
        return refresh_ranges(store, model_id)


TAGS = TagsChannel()
