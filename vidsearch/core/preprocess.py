"""Pure image preprocessing for the CLIP image tower.

The decoder resizes with swscale so that the shortest side equals the model's input size
(:func:`resize_dims`); here we centre-crop to a square and normalise to NCHW float32.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def resize_dims(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the shortest side == ``size``, aspect kept, both even-free integers >= size."""
    if width <= 0 or height <= 0:
        raise ValueError("frame has no pixels")
    if width <= height:
        return size, max(size, int(round(height * size / width)))
    return max(size, int(round(width * size / height))), size


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop of an HxWxC array whose shortest side is >= ``size``."""
    h, w = img.shape[:2]
    top = (h - size) // 2
    left = (w - size) // 2
    return img[top : top + size, left : left + size]


def to_tensor(frames: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 HxWx3 crops -> float32 [N,3,H,W] normalised with mean/std (per RGB channel)."""
    batch = np.stack(frames).astype(np.float32)  # N,H,W,3
    batch *= 1.0 / 255.0
    batch -= np.asarray(mean, dtype=np.float32)
    batch /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
