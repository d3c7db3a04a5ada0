"""Media: peak thumbnails and single frames, the original file (HTTP range requests) when a browser
plays it, else an H.264 transcode of the requested range. Videos are addressed only by their id."""
from __future__ import annotations

import functools
import os

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from vidsearch.errors import UserError
from vidsearch.media.playback import clip_name, media_info, transcode_range

router = APIRouter(prefix="/api/videos")
MAX_CLIP_S = 900.0


@functools.lru_cache(maxsize=4096)
def _info(path: str, signature: tuple) -> dict:
    return media_info(path)


def info_of(path: str) -> dict:
    st = os.stat(path)
    return _info(path, (st.st_size, st.st_mtime_ns))


@router.get("/{video_id}/info", summary="Container, codecs, fps, duration; whether the file plays as it is")
def info(video_id: str, request: Request):
    path = request.app.state.warm.video_path(video_id)
    return {"video_id": video_id, "path": path, **info_of(path),
            "file_url": f"/api/videos/{video_id}/file", "clip_url": f"/api/videos/{video_id}/clip"}


@router.get("/{video_id}/file", summary="The original file, with HTTP range requests (browser-playable files only)")
def original(video_id: str, request: Request):
    path = request.app.state.warm.video_path(video_id)
    meta = info_of(path)
    if not meta["playable"]:
        raise UserError(f"{meta['container']}/{meta['video_codec']} does not play in a browser: ask for /clip?start=&end= (H.264)")
    return FileResponse(path, media_type=meta["mime"], headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{video_id}/clip", summary="The range [start, end) transcoded to H.264 MP4 (time 0 = start)")
def clip(video_id: str, request: Request, start: float = Query(ge=0), end: float = Query(gt=0)):
    warm = request.app.state.warm
    path = warm.video_path(video_id)
    if not end > start or end - start > MAX_CLIP_S:
        raise UserError(f"ask for 0 < end - start <= {MAX_CLIP_S:.0f} seconds")
    target = warm.clip_dir() / clip_name(video_id, start, end)
    if not target.exists():
        transcode_range(path, start, end, target)
    return FileResponse(target, media_type="video/mp4", headers={"X-Clip-Start": f"{start:.3f}"})


@router.get("/{video_id}/frame.jpg", summary="The frame at (or just after) t seconds, as JPEG")
def frame(video_id: str, request: Request, t: float = Query(ge=0), size: int = Query(default=480, ge=32, le=1920)):
    import io

    from PIL import Image

    from vidsearch.media.video import read_frame_at

    path = request.app.state.warm.video_path(video_id)
    buf = io.BytesIO()
    Image.fromarray(read_frame_at(path, t, max_side=size)).save(buf, format="JPEG", quality=85)
    return Response(buf.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
