"""A sample of frames from the user's own images and videos (for model checks such as
``vidsearch model quantize``): images are read whole, videos at evenly spaced times."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vidsearch.core.plan import is_video_name
from vidsearch.errors import UserError, VideoError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def _media_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        found = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        out += [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS or is_video_name(f.name)]
    return out


def sample_frames(paths: Sequence[str | os.PathLike], n: int = 200, max_side: int = 480) -> Iterator[np.ndarray]:
    """About ``n`` RGB uint8 frames from image files and videos under ``paths`` (files or directories).

    Every image counts once; the frames left are spread evenly over the videos, and over each
    video's duration. Unreadable files are skipped; none readable is a :class:`UserError`.
    """
    from vidsearch.media.video import probe, read_frame_at

    files = _media_files(paths)
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS][:n]
    videos = [f for f in files if f not in images and is_video_name(f.name)]
    got = 0
    for f in images:
        img = _read_image(f)
        if img is not None:
            got += 1
            yield img
    per_video = math.ceil(max(0, n - got) / len(videos)) if videos else 0
    for f in videos:
        try:
            duration = probe(f).duration or 0.0
            for i in range(per_video):
                yield read_frame_at(f, duration * (i + 0.5) / per_video, max_side)
                got += 1
        except VideoError:
            continue
    if not got:
        raise UserError(f"no readable image or video under {', '.join(map(str, paths))}")


def _read_image(path: Path) -> np.ndarray | None:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # a phone's photo: turned as its EXIF says it is shown
            im.thumbnail((960, 960))
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError):
        return None
