"""Thumbnails of range peaks (PyAV decode + Pillow JPEG); a range with a box gets it drawn and its
enlarged crop beside the frame (:mod:`vidsearch.media.annotate`)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

from vidsearch.errors import VideoError
from vidsearch.core.ranges import TimeRange
from vidsearch.media.video import read_frame_at


def thumbnail_name(r: TimeRange) -> str:
    boxed = "" if r.box is None else "_" + hashlib.sha256(repr([round(v, 4) for v in r.box]).encode()).hexdigest()[:6]
    return f"{hashlib.sha256(r.video_id.encode()).hexdigest()[:10]}_{r.peak_time:010.3f}{boxed}.jpg"


#: the largest side a frame is decoded at to cut a box's crop from
CROP_SOURCE_SIDE = 4096


def write_thumbnail(src: str, t: float, target: Path, max_side: int = 480, quality: int = 88, box=None) -> Path:
    """A JPEG of the frame of ``src`` at ``t`` seconds (with ``box`` drawn and its crop beside it,
    unless the box is the whole frame). Raises VideoError."""
    from PIL import Image

    from vidsearch.core.regions import is_full

    if is_full(box):
        img = read_frame_at(src, t, max_side=max_side)
    else:
        from vidsearch.media.annotate import annotated

        img = annotated(read_frame_at(src, t, max_side=CROP_SOURCE_SIDE), box, max_side=max_side)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(target, quality=quality)
    return target


def write_thumbnails(ranges: Iterable[TimeRange], out_dir: str | Path, max_side: int = 480) -> None:
    """Write a JPEG at each range's peak time and set ``r.thumbnail``; unreadable sources are skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in ranges:
        if not r.path:
            continue
        target = out_dir / thumbnail_name(r)
        if not target.exists():
            try:
                write_thumbnail(r.path, r.peak_time, target, max_side=max_side, box=r.box)
            except VideoError:
                continue
        r.thumbnail = str(target)
