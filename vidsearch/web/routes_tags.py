"""Tags: what is in the archive, or in one video (the player's "what's here" panel)."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request

from vidsearch.retro.tags import list_tags

router = APIRouter()


@router.get("/api/tags", summary="The archive's tags ranked by total time, each with its ranges (vidsearch tags --json)")
def tags(request: Request, video: Optional[str] = None, video_id: Optional[str] = None, after: Optional[str] = None,
         before: Optional[str] = None, tag: Optional[str] = None):
    result = list_tags(request.app.state.warm.store, video_glob=video, video_id=video_id, after=after, before=before, tag=tag)
    return result.to_dict()
