"""The model inputs of a frame's regions (:mod:`vidsearch.core.regions`): the whole frame and its tiles.

Region 0 is prepared as whole-frame ingest prepares a frame (shortest side to the model's input
size, centre square). A tile is resized to the model's square input whole (a 16:9 tile is
squeezed, nothing is cut off), so its box is exactly what the model saw. Frames are decoded
large enough for every tile to keep the model's resolution (:func:`~vidsearch.core.regions.decode_side`),
but never above the source's own.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np

from vidsearch.core.plan import Sampling
from vidsearch.core.preprocess import center_crop, resize_dims
from vidsearch.core.regions import decode_side, layout, pixel_box
from vidsearch.media.video import DecodeReport, iter_frames, probe


def region_crops(img: np.ndarray, boxes: Sequence[Sequence[float]], size: int) -> list[np.ndarray]:
    """``size x size`` uint8 crops of an RGB frame: ``boxes[0]`` (the whole frame) centre-cropped,
    every other box resized whole."""
    from PIL import Image

    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    dims = resize_dims(w, h, size)
    whole = img if (w, h) == dims else np.asarray(pil.resize(dims, Image.BILINEAR))
    out = [np.ascontiguousarray(center_crop(whole, size))]
    for box in boxes[1:]:
        out.append(np.asarray(pil.resize((size, size), Image.BILINEAR, box=pixel_box(box, w, h))))
    return out


def iter_region_frames(path: str | os.PathLike, start: float, end: float, sampling: Sampling,
                       size: int, report: DecodeReport | None = None) -> Iterator[tuple[float, list[np.ndarray]]]:
    """``(pts, its region crops)`` for every sampled frame: ``count(sampling.regions)`` crops,
    region 0 first (the order of :func:`~vidsearch.core.regions.layout`), cut from the frame
    decoded at the side the tiles need."""
    boxes = layout(sampling.regions)
    side = decode_side(sampling.regions, size)
    info = probe(path)
    if info.width and info.height:  # never upscale: a tile of a small source has what it has
        side = max(size, min(side, info.width, info.height))
    for t, img in iter_frames(path, start, end, sampling, side, report=report):
        yield t, region_crops(img, boxes, size)
