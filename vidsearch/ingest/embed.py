"""The image channel: decode a chunk's sampled frames, embed them, write the shard.

Its chunks carry the image model's id; the catalog has one ``frames_<model>`` view per model
and ``frames`` for the most recently used one; the query side reads the float16 search matrix
(:mod:`vidsearch.index.matrix`).
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from vidsearch.core.coverage import chunk_coverage
from vidsearch.core.plan import ChunkSpec, Sampling, plan_video
from vidsearch.core.preprocess import center_crop, to_tensor
from vidsearch.core.regions import layout
from vidsearch.errors import UserError, VideoError
from vidsearch.index import matrix
from vidsearch.index.channel import AliasView, ShardView, View
from vidsearch.index.shards import IndexStore, frames_schema, model_slug
from vidsearch.media.prefetch import Prefetch, prefetch
from vidsearch.media.tiles import iter_region_crops
from vidsearch.media.video import DecodeReport, iter_frames
from vidsearch.models.contract import ModelInfo


class ImageEncoder(Protocol):
    info: ModelInfo

    def encode_images(self, pixels: np.ndarray) -> np.ndarray: ...


def sampled_crops(spec: ChunkSpec, info: ModelInfo, report: DecodeReport | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(pts, square uint8 crop) for every sampled frame of the chunk (every region of it, with regions;
    damaged packets: see ``report``)."""
    sampling = Sampling.parse(spec.sampling)
    if sampling.regions > 1:
        yield from iter_region_crops(spec.path, spec.start, spec.end, sampling, info.image_size, report=report)
        return
    for t, img in iter_frames(spec.path, spec.start, spec.end, sampling, info.image_size, report=report):
        yield t, center_crop(img, info.image_size)


def embed_frames(
    frames: Iterable[tuple[float, np.ndarray]], encoder: ImageEncoder, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batch (pts, crop) pairs through the image encoder; returns (pts [N], embeddings [N, dim])."""
    info = encoder.info
    pts: list[float] = []
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for t, crop in frames:
        pts.append(t)
        batch.append(crop)
        if len(batch) >= batch_size:
            out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
            batch = []
    if batch:
        out.append(encoder.encode_images(to_tensor(batch, info.mean, info.std)))
    emb = np.concatenate(out) if out else np.zeros((0, info.dim), dtype=np.float32)
    return np.asarray(pts, dtype=np.float64), emb


def start_decoding(spec: ChunkSpec, info: ModelInfo, batch_size: int = 32) -> Prefetch:
    """Start decoding a chunk's sampled frames in a thread now (at most two batches wait); the
    returned object's ``report`` is the decoding's :class:`DecodeReport`."""
    report = DecodeReport()
    frames = prefetch(sampled_crops(spec, info, report), batch_size * 2)
    frames.report = report
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
            pts, emb = embed_frames(frames, encoder, batch_size)
        except VideoError as e:
            store.write_failed(spec, str(e))
            raise
    finally:
        if frames is not None:
            frames.close()
    if len(pts) == 0 and Sampling.parse(spec.sampling).mode == "fps":
        err = VideoError(f"{spec.path}: no frames could be decoded between {spec.start:.0f}s and {spec.end:.0f}s (truncated or corrupt?)")
        store.write_failed(spec, str(err))
        raise err
    extra, regions = region_rows(spec.sampling, len(pts))
    frame_pts = np.unique(pts) if regions is not None else pts  # with regions a frame has several rows
    extra = {"seconds": round(time.perf_counter() - t0, 4), **extra,
             **coverage_fields(spec, frame_pts, getattr(frames, "report", None))}
    return store.write_shard(spec, pts, emb, extra=extra, regions=regions)


def region_rows(sampling_key: str, rows: int) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """(marker fields, (region, box) per row) of a chunk's ``rows`` embeddings: none without regions;
    with them, ``frames`` counts frames (not rows) and ``regions`` names the grid."""
    grid = Sampling.parse(sampling_key).regions
    if grid == 1:
        return {}, None
    boxes = np.asarray(layout(grid), np.float32)
    region = np.arange(rows) % len(boxes)
    return {"frames": rows // len(boxes), "rows": rows, "regions": grid}, (region, boxes[region])


class ImageChannel:
    """The image embedding: the channel of every model id no other channel owns."""

    name = "image"
    report_key = "frames"
    needs_encoder = True

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
        """``frames_<model slug>`` per model with shards; ``frames``: the most recently used of them."""
        per_model = [ShardView(f"frames_{model_slug(m)}", m, frames_schema(dim), optional=True) for m, dim in models]
        frames = AliasView("frames", tuple(v.name for v in per_model), ShardView("frames", None, frames_schema(None)))
        return [*per_model, frames]

    def refresh(self, store: IndexStore, model_id: str) -> str:
        return matrix.refresh(store, model_id)


IMAGE = ImageChannel()
