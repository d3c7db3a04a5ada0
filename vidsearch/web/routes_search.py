"""Search, refine, uploads, status, events and classify: JSON over the query and retro services."""
from __future__ import annotations

import time
import uuid
from typing import Optional

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from vidsearch.errors import UserError
from vidsearch.evidence.cases import range_id
from vidsearch.query.review import Feedback, QuerySpec, compare, review_query

router = APIRouter(prefix="/api")


class RangeRef(BaseModel):
    video_id: str = Field(max_length=64)
    start: float
    end: float


class Mark(RangeRef):
    relevant: bool


class QueryIn(BaseModel):
    prompts: list[str] = Field(default_factory=list, max_length=32)
    negatives: list[str] = Field(default_factory=list, max_length=32)
    images: list[str] = Field(default_factory=list, max_length=8, description="ids from POST /api/uploads")
    text_in_frame: Optional[str] = Field(default=None, max_length=500)
    video: Optional[str] = Field(default=None, max_length=500, description="path glob")
    after: Optional[str] = Field(default=None, max_length=64)
    before: Optional[str] = Field(default=None, max_length=64)
    model: Optional[str] = Field(default=None, max_length=500)
    top: int = Field(default=10, ge=1, le=500)
    min_score: Optional[float] = Field(default=None, ge=-1, le=1)
    smooth: float = Field(default=3.0, ge=0, le=600)
    feedback: list[Mark] = Field(default_factory=list, max_length=500, description="marked ranges (refine)")
    previous: list[RangeRef] = Field(default_factory=list, max_length=500, description="the ranges before refining")


def spec_of(q: QueryIn, warm) -> QuerySpec:
    return QuerySpec(prompts=q.prompts, negatives=q.negatives, images=[warm.upload_path(i) for i in q.images],
                     text_in_frame=q.text_in_frame, video_glob=q.video, after=q.after, before=q.before, top=q.top,
                     min_score=q.min_score, smooth_s=q.smooth)


@router.get("/models", summary="Models with frames in this index (the first is the default)")
def models(request: Request):
    from vidsearch.query.models import indexed_models

    warm = request.app.state.warm
    try:
        default = warm.model(None).model_id
    except UserError:
        default = None
    have = [{"model_id": m, "name": n, "default": m == default} for m, n in indexed_models(warm.store)]
    return {"models": sorted(have, key=lambda m: not m["default"])}


@router.post("/query", summary="Ranked time ranges and per-video score timelines (feedback: refine)")
def query(q: QueryIn, request: Request):
    warm = request.app.state.warm
    t0 = time.perf_counter()
    spec = spec_of(q, warm)
    encoder = warm.encoder(q.model) if spec.visual else None
    index = warm.frame_index(encoder.info.model_id) if encoder else None
    feedback = [Feedback(m.video_id, m.start, m.end, m.relevant) for m in q.feedback]
    out = review_query(warm.store, encoder, index, spec, feedback).to_dict()
    for r in out["ranges"]:
        r["id"] = range_id(r["video_id"], r["start"], r["end"])
    if q.previous:
        out["changes"] = compare([p.model_dump() for p in q.previous], out["ranges"])
    out["api_seconds"] = round(time.perf_counter() - t0, 4)
    return JSONResponse(out)  # plain JSON: the timelines are long lists of floats (no re-encoding pass)


@router.post("/uploads", summary="Upload an example image (JPEG/PNG, size-limited); returns its id")
async def upload(file: UploadFile, request: Request):
    warm = request.app.state.warm
    data = await file.read(warm.upload_limit + 1)
    if len(data) > warm.upload_limit:
        return _too_big(warm.upload_limit)
    _check_image(data)
    uid = uuid.uuid4().hex
    (warm.upload_dir() / f"{uid}.img").write_bytes(data)
    return {"id": uid, "name": (file.filename or "")[:100], "bytes": len(data)}


def _too_big(limit: int):
    from .responses import error

    return error(413, f"upload too large: at most {limit // (1024 * 1024)} MiB")


def _check_image(data: bytes) -> None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UserError("the upload is not an image: send a JPEG or PNG") from None


@router.get("/status", summary="Videos, hours, chunks done / pending / failed, ingest progress")
def status(request: Request):
    from vidsearch.errors import IndexUnusableError

    from vidsearch.ingest.status import index_status, read_status

    store = request.app.state.warm.store
    try:  # settle chunks workers finished since the last look
        summary = index_status(store)
    except IndexUnusableError:
        raise
    except Exception:  # noqa: BLE001 - the catalog is busy (an ingest holds it): read what is there
        summary = read_status(store)
    c = summary["chunks"]
    total = c["done"] + c["pending"] + c["failed"]
    summary["progress"] = round(c["done"] / total, 4) if total else None
    summary["ingest_running"] = c["pending"] > 0
    return summary


class EventsIn(BaseModel):
    prompts: list[str] = Field(default_factory=list, max_length=32)
    negatives: list[str] = Field(default_factory=list, max_length=32)
    video: Optional[str] = Field(default=None, max_length=500)
    after: Optional[str] = Field(default=None, max_length=64)
    before: Optional[str] = Field(default=None, max_length=64)
    model: Optional[str] = Field(default=None, max_length=500)
    high: Optional[float] = Field(default=None, ge=-1, le=1)
    low: Optional[float] = Field(default=None, ge=-1, le=1)
    smooth: float = Field(default=3.0, ge=0, le=600)
    min_duration: float = Field(default=0.0, ge=0)


@router.post("/events", summary="Every interval where a concept is present: first appearance, dwell")
def events(q: EventsIn, request: Request):
    from vidsearch.retro.events import find_events

    warm = request.app.state.warm
    enc = warm.encoder(q.model)
    return find_events(warm.store, enc, q.prompts, negatives=q.negatives, index=warm.frame_index(enc.info.model_id),
                       video_glob=q.video or None, after=q.after or None, before=q.before or None, high=q.high,
                       low=q.low, smooth_s=q.smooth, min_duration_s=q.min_duration).to_dict()


class ClassifyIn(BaseModel):
    labels: str = Field(max_length=2000, description="comma-separated labels")
    video: Optional[str] = Field(default=None, max_length=500)
    model: Optional[str] = Field(default=None, max_length=500)
    smooth: float = Field(default=3.0, ge=0, le=600)
    min_prob: Optional[float] = Field(default=None, ge=0, le=1)
    min_segment: float = Field(default=0.0, ge=0)


@router.post("/classify", summary="Zero-shot label timeline per video")
def classify(q: ClassifyIn, request: Request):
    from vidsearch.retro.classify import parse_labels
    from vidsearch.retro.classify import classify_frames

    warm = request.app.state.warm
    enc = warm.encoder(q.model)
    return classify_frames(warm.store, enc, parse_labels(q.labels), index=warm.frame_index(enc.info.model_id),
                           video_glob=q.video or None, smooth_s=q.smooth, min_prob=q.min_prob,
                           min_segment_s=q.min_segment).to_dict()
