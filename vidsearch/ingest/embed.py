"""The image channel: decode a chunk's sampled frames, embed them, write the shard.

Its chunks carry the image model's id; the catalog has one ``frames_<model>`` view per model
and ``frames`` for the most recently used one; the query side reads the float16 search matrix
(:mod:`vidsearch.index.matrix`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from vidsearch.core.coverage import chunk_coverage
from vidsearch.core.motion import RegionGates, reuse_map, reuse_period
from vidsearch.core.plan import ChunkSpec, Sampling, plan_video
from vidsearch.core.preprocess import center_crop, to_tensor
from vidsearch.core.regions import count, layout
from vidsearch.errors import UserError, VideoError
from vidsearch.index import matrix
from vidsearch.index.channel import AliasView, Fill, ShardView, View
from vidsearch.index.shards import IndexStore, frames_schema, model_slug
from vidsearch.media.prefetch import Prefetch, prefetch
from vidsearch.media.tiles import iter_region_frames
from vidsearch.media.video import DecodeReport, check_size, iter_frames
from vidsearch.models.contract import ModelInfo


class ImageEncoder(Protocol):
    info: ModelInfo

    def encode_images(self, pixels: np.ndarray) -> np.ndarray: ...


def sampled_crops(spec: ChunkSpec, info: ModelInfo, report: DecodeReport | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(pts, square uint8 crop) for every sampled frame of the chunk (every region of it, with regions;
    damaged packets: see ``report``); no gating."""
    for t, crops in _decoded(spec, info, report):
        for crop in crops:
            yield t, crop


def _decoded(spec: ChunkSpec, info: ModelInfo, report: DecodeReport | None) -> Iterator[tuple[float, list[np.ndarray]]]:
    """(pts, the frame's crops for the encoder) per sampled frame: the centre crop; with regions,
    the whole frame's and each tile's."""
    sampling = Sampling.parse(spec.sampling)
    if sampling.regions > 1:
        yield from iter_region_frames(spec.path, spec.start, spec.end, sampling, info.image_size, report=report)
        return
    for t, img in iter_frames(spec.path, spec.start, spec.end, sampling, info.image_size, report=report):
        yield t, [center_crop(img, info.image_size)]


def chunk_gate(spec: ChunkSpec) -> RegionGates | None:
    """The motion gate of a chunk (None: ``--motion off``): the :data:`~vidsearch.core.motion.GATE`
    rule, fresh per chunk, one per region (each compares what the encoder sees of it), its forced
    refresh on a period that divides the chunk length."""
    if spec.motion == "off":
        return None
    if spec.motion != "auto":
        raise UserError(f"unknown motion setting {spec.motion!r} (auto or off)")
    return RegionGates(count(Sampling.parse(spec.sampling).regions), max_reuse_s=reuse_period(spec.chunk_s))


def gated_frames(spec: ChunkSpec, info: ModelInfo, report: DecodeReport | None = None,
                 gate: RegionGates | None = None) -> Iterator[tuple[float, list[np.ndarray], list[bool]]]:
    """(pts, crops, embed? per crop) per sampled frame: False where ``gate`` says the crop's region
    may reuse its last embedding (all True without a gate)."""
    check_size(spec.path, spec.size)
    for t, crops in _decoded(spec, info, report):
        yield t, crops, [True] * len(crops) if gate is None else gate.decide(t, crops)


@dataclasses.dataclass
class Embedded:
    """A chunk's rows: every sampled frame (every region of it), embedded or carrying a reused embedding."""

    pts: np.ndarray  # float64 [rows]
    source_pts: np.ndarray  # float64 [rows]: the time of the frame whose embedding the row carries
    emb: np.ndarray  # float32 [rows, dim]
    embedded: int  # frames that went through the encoder (with regions: some of their crops at least)
    embedded_rows: int  # crops that went through the encoder (rows carrying their own embedding)


def embed_frames(frames: Iterable[tuple[float, list[np.ndarray], list[bool]]], encoder: ImageEncoder, batch_size: int) -> Embedded:
    """Batch the crops to embed through the image encoder (``batch_size`` crops at a time); a crop
    not to embed gets the row of its region's last embedded crop."""
    info = encoder.info
    pts: list[float] = []
    flags: list[list[bool]] = []
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for t, crops, embed in frames:
        pts.append(t)
        flags.append(embed)
        batch.extend(c for c, e in zip(crops, embed) if e)
        if len(batch) >= batch_size:
            out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
            batch = []
    if batch:
        out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
    emb = np.concatenate(out) if out else np.zeros((0, info.dim), dtype=np.float32)
    mask = np.asarray(flags, dtype=bool).reshape(len(pts), -1) if pts else np.zeros((0, 1), bool)
    return spread(np.asarray(pts, dtype=np.float64), mask, emb)


def spread(pts: np.ndarray, embed: np.ndarray, emb: np.ndarray) -> Embedded:
    """Rows for every frame and region (frame by frame) from the embedded crops (in order);
    ``embed[f, r]``: whether region ``r`` of frame ``f`` went through the encoder."""
    if not len(pts):
        return Embedded(pts, pts.copy(), emb[:0], 0, 0)
    if int(embed.sum()) != len(emb):
        raise ValueError(f"{len(emb)} embeddings for {int(embed.sum())} embedded crops")
    source, rows = reuse_map(embed)  # per frame and region: the frame whose embedding it carries
    per = embed.shape[1]
    return Embedded(np.repeat(pts, per), pts[source].ravel(), emb[rows], int(embed.any(axis=1).sum()), int(embed.sum()))


def start_decoding(spec: ChunkSpec, info: ModelInfo, batch_size: int = 32) -> Prefetch:
    """Start decoding (and gating) a chunk's sampled frames in a thread now (at most two batches of
    crops wait); the returned object's ``report`` is the decoding's :class:`DecodeReport`, its
    ``gate`` the chunk's motion gate (None: off)."""
    report = DecodeReport()
    gate = chunk_gate(spec)
    per_frame = count(Sampling.parse(spec.sampling).regions)
    frames = prefetch(gated_frames(spec, info, report, gate), max(2, batch_size * 2 // per_frame))
    frames.report, frames.gate = report, gate
    return frames


def coverage_fields(spec: ChunkSpec, pts, report: DecodeReport | None) -> dict:
    """The marker fields saying how much of the chunk its frames cover (see :mod:`vidsearch.core.coverage`)."""
    sampling = Sampling.parse(spec.sampling)
    report = report or DecodeReport()
    return chunk_coverage(spec.start, spec.end, sampling.mode, sampling.fps, pts, report.frame_interval, report.errors)


def embed_chunk(
    spec: ChunkSpec, encoder: ImageEncoder, store: IndexStore, batch_size: int = 32, frames: Prefetch | None = None
) -> dict:
    """Decode, embed and store one chunk; returns its done marker. Skips a chunk already done.

    ``frames``: the chunk's decoding, already started with :func:`start_decoding` (so that it
    overlapped the previous chunk); closed here in any case.
    Raises :class:`VideoError` for a chunk that yields no frame where frames were expected
    (a truncated file), after recording it as failed.
    """
    try:
        done = store.done_marker(spec)
        if done is not None:
            return {**done, "skipped": True}
        if encoder is None or encoder.info.model_id != spec.model_id:
            have = encoder.info.model_id if encoder is not None else "no model"
            raise UserError(f"chunk was planned for model {spec.model_id} but this worker runs {have}")
        t0 = time.perf_counter()
        frames = frames or start_decoding(spec, encoder.info, batch_size)
        try:
            rows = embed_frames(frames, encoder, batch_size)
            check_size(spec.path, spec.size)  # and not while it was read
        except VideoError as e:
            store.write_failed(spec, str(e))
            raise
    finally:
        if frames is not None:
            frames.close()
    if len(rows.pts) == 0 and Sampling.parse(spec.sampling).mode == "fps":
        err = VideoError(f"{spec.path}: no frames could be decoded between {spec.start:.0f}s and {spec.end:.0f}s (truncated or corrupt?)")
        store.write_failed(spec, str(err))
        raise err
    extra, regions = region_rows(spec.sampling, len(rows.pts))
    frame_pts = np.unique(rows.pts) if regions is not None else rows.pts  # with regions a frame has several rows
    gate = getattr(frames, "gate", None)
    extra = {"seconds": round(time.perf_counter() - t0, 4), **extra, "embedded": rows.embedded,
             **({"embedded_rows": rows.embedded_rows} if regions is not None else {}),
             **({"gate": gate.settings()} if gate is not None else {}),
             **coverage_fields(spec, frame_pts, getattr(frames, "report", None))}
    return store.write_shard(spec, rows.pts, rows.emb, extra=extra, regions=regions, source=rows.source_pts)


def region_rows(sampling_key: str, rows: int) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """(marker fields, (region, box) per row) of a chunk's ``rows`` embeddings: none without regions;
    with them, ``frames`` counts frames (not rows) and ``regions`` names the grid."""
    grid = Sampling.parse(sampling_key).regions
    if grid == 1:
        return {}, None
    boxes = np.asarray(layout(grid), np.float32)
    region = np.arange(rows) % len(boxes)
    return {"frames": rows // len(boxes), "rows": rows, "regions": grid}, (region, boxes[region])


def _frame_fills() -> tuple[Fill, ...]:
    import pyarrow as pa

    return (Fill("source_pts", pa.float64(), "embedded", "pts"),  # shards from before motion gating
            Fill("region", pa.int32(), "regions", 0),
            Fill("box", pa.list_(pa.float32(), 4), "regions", (0.0, 0.0, 1.0, 1.0)))


class ImageChannel:
    """The image embedding: the channel of every model id no other channel owns."""

    name = "image"
    report_key = "frames"
    needs_encoder = True
    motion_gated = True  # its chunks carry the ingest's --motion setting

    def owns(self, model_id: str) -> bool:
        return True

    def model_id(self, model: ModelInfo) -> str:
        return model.model_id

    def plan(self, video_id: str, path: str, duration: float, model_id: str, sampling: Sampling, chunk_s: float) -> list[ChunkSpec]:
        return plan_video(video_id, path, duration, model_id, sampling, chunk_s)

    def start(self, spec: ChunkSpec, encoder: ImageEncoder | None, batch_size: int) -> Prefetch | None:
        if encoder is None or encoder.info.model_id != spec.model_id:
            return None  # process() says why
        return start_decoding(spec, encoder.info, batch_size)

    def process(self, spec: ChunkSpec, store: IndexStore, encoder: ImageEncoder | None = None, batch_size: int = 32,
                started: Prefetch | None = None) -> dict:
        return embed_chunk(spec, encoder, store, batch_size, frames=started)

    def shard_schema(self, dim: int | None = None):
        return frames_schema(dim)

    def views(self, models: Sequence[tuple[str, int]]) -> list[View]:
        """``frames_<model slug>`` per model with shards; ``frames``: the most recently used of them.
        Every row has ``source_pts`` (the frame whose embedding it carries: motion gating),
        ``region`` and ``box`` (the whole frame for shards without regions)."""
        per_model = [ShardView(f"frames_{model_slug(m)}", m, frames_schema(dim), optional=True, fills=_frame_fills())
                     for m, dim in models]
        frames = AliasView("frames", tuple(v.name for v in per_model),
                           ShardView("frames", None, frames_schema(None), fills=_frame_fills()))
        return [*per_model, frames]

    def refresh(self, store: IndexStore, model_id: str) -> str:
        return matrix.refresh(store, model_id)


IMAGE = ImageChannel()
