"""Cases: keep ranges with notes, record relevance marks, export evidence and serve the report."""
from __future__ import annotations

import re
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from vidsearch.evidence.cases import export_case
from .state import NotFound

router = APIRouter()
STAMP = re.compile(r"^[0-9]{8}T[0-9]{12}Z$")


class KeepIn(BaseModel):
    video_id: str = Field(max_length=64)
    start: float
    end: float
    peak_time: float
    peak_score: Optional[float] = None
    score: Optional[float] = None
    frames: Optional[int] = None
    model_id: Optional[str] = Field(default=None, max_length=200)
    semantics: Optional[str] = Field(default=None, max_length=40)
    note: str = Field(default="", max_length=4000)
    query: dict = Field(default_factory=dict, description="what was asked when the range was kept")


class NoteIn(BaseModel):
    note: str = Field(max_length=4000)


class MarkIn(BaseModel):
    video_id: str = Field(max_length=64)
    start: float
    end: float
    relevant: bool
    query: str = Field(default="", max_length=2000)


class ExportIn(BaseModel):
    clips: bool = True
    pad: float = Field(default=0.0, ge=0, le=60)


@router.get("/api/cases", summary="Cases of this index")
def cases(request: Request):
    return {"cases": request.app.state.warm.cases.names()}


@router.get("/api/cases/{name}", summary="One case: kept ranges with notes, marks, exports")
def case(name: str, request: Request):
    return request.app.state.warm.cases.load(name)


@router.post("/api/cases/{name}/ranges", summary="Keep a range in the case (created on first use)")
def keep(name: str, body: KeepIn, request: Request):
    warm = request.app.state.warm
    path = warm.video_path(body.video_id)  # only ranges of indexed videos
    rng = {**body.model_dump(exclude={"note", "query"}), "path": path}
    return warm.cases.keep(name, rng, query=body.query, note=body.note)


@router.patch("/api/cases/{name}/ranges/{rid}", summary="Change a kept range's note")
def note(name: str, rid: str, body: NoteIn, request: Request):
    return request.app.state.warm.cases.update(name, rid, note=body.note)


@router.delete("/api/cases/{name}/ranges/{rid}", summary="Drop a range from the case")
def drop(name: str, rid: str, request: Request):
    return request.app.state.warm.cases.update(name, rid, remove=True)


@router.post("/api/cases/{name}/marks", summary="Record a relevance mark (who marked what, when)")
def mark(name: str, body: MarkIn, request: Request):
    warm = request.app.state.warm
    warm.video_path(body.video_id)
    return warm.cases.mark(name, body.model_dump(), body.relevant, body.query)


@router.post("/api/cases/{name}/export", summary="Evidence export of the case; returns the report URL")
def export(name: str, body: ExportIn, request: Request):
    warm = request.app.state.warm
    out = export_case(warm.store, warm.cases, name, clips=body.clips, pad_s=body.pad)
    out["report_url"] = f"/cases/{name}/exports/{out['export']}/report.html"
    return out


@router.get("/cases/{name}/exports/{stamp}/{rel:path}", summary="A file of an export (report, thumbs, clips, manifest)")
def export_file(name: str, stamp: str, rel: str, request: Request):
    root = request.app.state.warm.cases.export_root(name)
    if not STAMP.match(stamp):
        raise NotFound("no such export")
    base = (root / stamp).resolve()
    target = (base / rel).resolve()
    if base not in target.parents or not target.is_file():
        raise NotFound("no such file in this export")
    return FileResponse(target)
