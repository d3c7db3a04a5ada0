"""Pure region layout: which parts of a frame are embedded besides the whole frame, and their names.

``--regions N`` embeds the whole frame (region 0) and an ``N x N`` grid of overlapping tiles
(regions ``1 .. N*N``, row by row from the top left). A tile is ``2/(N+1)`` of the frame's width
and height and the tiles start every ``1/(N+1)``, so neighbours overlap by half a tile and a
subject cut by one tile's edge lies whole in the next. ``N=3``: nine tiles of half the frame
(a quarter of its area), at 0, 1/4 and 1/2 of each side. ``N=1`` is the whole frame only.

A box is ``(x0, y0, x1, y1)`` in fractions of the frame's width and height (0..1, top left origin).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: the largest grid ``--regions`` accepts (6: 37 embeddings per frame)
MAX_GRID = 6
FULL: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

Box = tuple[float, float, float, float]


def check_grid(n: int) -> int:
    if not isinstance(n, int) or not 1 <= n <= MAX_GRID:
        raise ValueError(f"regions must be a whole number from 1 to {MAX_GRID}")
    return n


def layout(n: int) -> list[Box]:
    """The boxes of grid ``n``: the whole frame first, then the ``n x n`` tiles row by row."""
    check_grid(n)
    boxes = [FULL]
    if n == 1:
        return boxes
    side, step = 2.0 / (n + 1), 1.0 / (n + 1)
    for row in range(n):
        for col in range(n):
            x0, y0 = col * step, row * step
            boxes.append(tuple(round(v, 6) for v in (x0, y0, min(1.0, x0 + side), min(1.0, y0 + side))))
    return boxes


def count(n: int) -> int:
    """Embeddings per frame with grid ``n`` (``n*n`` tiles + the whole frame; 1 for ``n=1``)."""
    return len(layout(n))


def decode_side(n: int, image_size: int) -> int:
    """The shortest side to decode frames at so that every tile of grid ``n`` still has ``image_size``
    pixels on its shortest side."""
    return image_size if n <= 1 else int(math.ceil(image_size * (n + 1) / 2))


def pixel_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A fractional box in pixels of a ``width x height`` image (at least one pixel each way)."""
    x0, y0 = int(round(box[0] * width)), int(round(box[1] * height))
    x1, y1 = int(round(box[2] * width)), int(round(box[3] * height))
    return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)


def is_full(box: Sequence[float] | None) -> bool:
    return box is None or all(abs(a - b) < 1e-6 for a, b in zip(box, FULL))


def where(box: Sequence[float] | None) -> str:
    """Where in the frame a box is, in words: ``top-left``, ``centre``, ``bottom``, ... or
    ``whole frame`` (its centre's third of the frame, with a wider middle band)."""
    if is_full(box):
        return "whole frame"
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = "left" if cx < 0.4 else "right" if cx > 0.6 else ""
    row = "top" if cy < 0.4 else "bottom" if cy > 0.6 else ""
    return "-".join(p for p in (row, col) if p) or "centre"


def box_list(box: Sequence[float] | None) -> list[float] | None:
    """A box as a JSON list (4 decimals), None for none."""
    return None if box is None else [round(float(v), 4) for v in box]


def frame_starts(region: np.ndarray) -> np.ndarray:
    """Row offsets of each frame in rows laid out frame by frame, region 0 first: the rows whose
    region is 0, plus the row count at the end (``[F+1]``)."""
    region = np.asarray(region)
    return np.append(np.flatnonzero(region == 0), len(region)).astype(np.int64)


def best_of_regions(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per frame the best value of its rows (``starts`` from :func:`frame_starts`)."""
    if len(starts) <= 1:
        return np.zeros(0, dtype=np.asarray(values).dtype)
    return np.maximum.reduceat(values, starts[:-1])
