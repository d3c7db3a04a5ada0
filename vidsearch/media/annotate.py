"""A hit's box drawn on its frame, with the box's enlarged crop beside it (supervision's annotators).

For thumbnails and evidence of an index with regions (``ingest --regions``): the box says where in
the frame the query matched best; the crop, cut from the full-resolution frame, shows it large.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vidsearch.core.regions import is_full, pixel_box, where
from vidsearch.errors import UserError

GAP = 6  # pixels between the frame and the crop
BOX_RGB = (255, 200, 0)  # amber: stands out on most scenes


def _sv():
    try:
        import supervision
    except ImportError:
        raise UserError("drawing boxes needs supervision: pip install 'vidsearch[regions]'") from None
    return supervision


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((max(1, width), max(1, height)), Image.BILINEAR))


def draw_box(img: np.ndarray, box: Sequence[float], label: str | None = None) -> np.ndarray:
    """A copy of the RGB frame ``img`` with ``box`` (fractions) drawn and labelled."""
    from PIL import Image

    sv = _sv()
    h, w = img.shape[:2]
    det = sv.Detections(xyxy=np.array([pixel_box(box, w, h)], dtype=float), class_id=np.array([0]))
    colour = sv.Color(*BOX_RGB)
    thickness = max(2, round(min(w, h) / 160))
    scene = Image.fromarray(np.ascontiguousarray(img))  # a PIL image: supervision keeps RGB as RGB
    scene = sv.BoxAnnotator(color=colour, thickness=thickness).annotate(scene, det)
    if label:
        labeler = sv.LabelAnnotator(color=colour, text_color=sv.Color.BLACK, text_scale=max(0.35, min(w, h) / 600),
                                    text_padding=3, text_position=sv.Position.TOP_LEFT, smart_position=True)
        scene = labeler.annotate(scene, det, labels=[label])
    return np.asarray(scene)


def annotated(full: np.ndarray, box: Sequence[float] | None, max_side: int = 480, label: str | None = None) -> np.ndarray:
    """The frame (longest side ``max_side``) with ``box`` drawn, and beside it the box cut from the
    full-resolution frame ``full``, enlarged to the frame's height. A whole-frame box (or none):
    the frame only."""
    h, w = full.shape[:2]
    scale = min(1.0, max_side / max(w, h))
    frame = full if scale == 1.0 else _resize(full, int(w * scale), int(h * scale))
    if is_full(box):
        return np.ascontiguousarray(frame)
    frame = draw_box(frame, box, label if label is not None else where(box))
    x0, y0, x1, y1 = pixel_box(box, w, h)
    crop = full[y0:y1, x0:x1]
    fh = frame.shape[0]
    crop = _resize(crop, int(round(crop.shape[1] * fh / crop.shape[0])), fh)
    out = np.full((fh, frame.shape[1] + GAP + crop.shape[1], 3), 255, np.uint8)
    out[:, : frame.shape[1]] = frame
    out[:, frame.shape[1] + GAP :] = crop
    return out
