"""Thumbnails of range peaks (PyAV decode + Pillow JPEG)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from .errors import VideoError
from .ranges import TimeRange
from .video import read_frame_at


def thumbnail_name(r: TimeRange) -> str:
    return f"{hashlib.sha256(r.video_id.encode()).hexdigest()[:10]}_{r.peak_time:010.3f}.jpg"


def write_thumbnails(ranges: Iterable[TimeRange], out_dir: str | Path, max_side: int = 480) -> None:
    """Write a JPEG at each range's peak time and set ``r.thumbnail``; unreadable sources are skipped."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in ranges:
        if not r.path:
            continue
        target = out_dir / thumbnail_name(r)
        if not target.exists():
            try:
                img = read_frame_at(r.path, r.peak_time, max_side=max_side)
            except VideoError:
                continue
            Image.fromarray(img).save(target, quality=88)
        r.thumbnail = str(target)
