"""RapidOCR adapter: read the text in a video frame.

Uses ``rapidocr-onnxruntime`` (PP-OCRv4 detection + recognition as ONNX, Apache-2.0), which
ships its weights inside the wheel: nothing is downloaded. The engine is created on the first
:meth:`OcrReader.read`, once per reader.

Speed settings (2 cores): RapidOCR's default scales a frame whose *short* side is under 736 px
up to 736 (a 640x360 frame becomes 1308x736), leaves larger frames at full size, and runs the
180-degree angle classifier. vidsearch scales frames down so their *long* side is at most 960
px (``max_side``; smaller frames are read as they are) and skips the angle classifier (on-screen
text is upright): ~4x faster on 640x360 (0.59 -> 0.15 s), ~3x on 1920x1080 (0.7 -> 0.24 s), and
the rendered test text, down to 18 px high in a 1080p frame, is still read.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from vidsearch.errors import first_line, ModelError, UserError
from vidsearch.settings import current

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vidsearch[ocr]'"
ENGINE_NAME = "rapidocr-onnxruntime"


@dataclass(frozen=True)
class TextLine:
    """One recognised line. Coordinates are fractions of the frame's width and height."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (axis-aligned, 0..1)
    quad: tuple[tuple[float, float], ...]  # 4 corners clockwise from top-left (0..1)

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "box": list(self.box),
                "quad": [list(p) for p in self.quad]}


def engine_version() -> str | None:
    """Installed rapidocr-onnxruntime version, or None."""
    try:
        from importlib.metadata import version

        return version(ENGINE_NAME)
    except Exception:
        return None


def available() -> bool:
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


class OcrReader:
    """``read(frame_rgb) -> list[TextLine]`` for an RGB uint8 frame [H, W, 3].

    ``max_side``: the detector sees the frame scaled so its long side is at most this many
    pixels. ``min_confidence``: recognised lines scoring less are dropped.
    ``use_cls``: run the angle classifier (for upside-down text; off for speed).
    ``threads``: ONNX Runtime intra-op threads (default: ``$VIDSEARCH_THREADS`` or all cores).
    ``providers``: "cpu", "cuda" or "auto" (CUDA when onnxruntime-gpu offers it).
    """

    def __init__(self, max_side: int = 960, min_confidence: float = 0.5, use_cls: bool = False,
                 threads: int | None = None, providers: str = "cpu"):
        self.max_side = int(max_side)
        self.min_confidence = float(min_confidence)
        self.use_cls = bool(use_cls)
        self.threads = threads
        self.providers = providers
        self._engine = None
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict:
        """What shapes the output; store it with the results."""
        return {"engine": ENGINE_NAME, "version": engine_version(), "max_side": self.max_side,
                "min_confidence": self.min_confidence, "use_cls": self.use_cls}

    def load(self) -> "OcrReader":
        with self._lock:
            if self._engine is None:
                self._engine = self._create()
        return self

    def _use_cuda(self) -> bool:
        choice = (self.providers or "cpu").lower()
        if choice == "cpu":
            return False
        import onnxruntime as ort

        has = "CUDAExecutionProvider" in ort.get_available_providers()
        if choice == "cuda" and not has:
            raise ModelError("OCR on cuda needs onnxruntime-gpu with CUDAExecutionProvider here; run OCR on cpu instead")
        if choice not in ("cuda", "auto"):
            raise ModelError(f"unknown OCR provider {self.providers!r}; choose auto, cuda or cpu")
        return has

    def _create(self):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise UserError(f"OCR needs the ocr extra ({e.name or 'rapidocr_onnxruntime'} is missing): {INSTALL_HINT}") from None
        threads = self.threads or int(current().threads or 0) or -1
        cuda = self._use_cuda()
        kw = dict(
            use_cls=self.use_cls,
            text_score=self.min_confidence,
            det_limit_type="max",
            det_limit_side_len=self.max_side,
            # RapidOCR re-pads frames wider than 8:1 and shorter than 30 px; keep its defaults.
            intra_op_num_threads=threads,
        )
        if cuda:
            kw.update(det_use_cuda=True, cls_use_cuda=True, rec_use_cuda=True)
        try:
            engine = RapidOCR(**kw)
        except Exception as e:  # onnxruntime / yaml errors
            raise ModelError(f"cannot start RapidOCR: {first_line(e)}") from None
        log.info("RapidOCR ready (%s)", self.settings)
        return engine

    def read(self, frame_rgb: np.ndarray, merge: bool = True) -> list[TextLine]:
        """Lines of text in ``frame_rgb`` (uint8 RGB [H, W, 3]), top to bottom, left to right.

        ``merge``: join boxes that sit side by side on one row (the detector often boxes the
        words of a large sign separately) into one line; see :func:`merge_rows`."""
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ValueError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        self.load()
        h, w = frame.shape[:2]
        bgr = np.ascontiguousarray(frame[..., 2::-1])  # PP-OCR models take BGR, as cv2 loads
        if max(h, w) > self.max_side:
            # RapidOCR's own det_limit_side_len is ignored for frames over 960 px ("max" mode
            # picks 960/1500/2000 from the frame size), so scale down here. Boxes are returned
            # as fractions of the frame, so the scale needs no undoing.
            import cv2

            scale = self.max_side / max(h, w)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        with self._lock:
            result, _ = self._engine(bgr)
        lines = _to_lines(result, w, h)
        return merge_rows(lines, aspect=w / h) if merge else lines

    def read_many(self, frames: Iterable[np.ndarray], merge: bool = True) -> list[list[TextLine]]:
        return [self.read(f, merge=merge) for f in frames]


def _to_lines(result, width: int, height: int) -> list[TextLine]:
    lines: list[TextLine] = []
    if not result:
        return lines
    for item in result:
        quad, text, score = item[0], item[1], item[2]
        text = " ".join(str(text).split())
        if not text:
            continue
        pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
        xs = np.clip(pts[:, 0] / width, 0.0, 1.0)
        ys = np.clip(pts[:, 1] / height, 0.0, 1.0)
        box = (round(float(xs.min()), 5), round(float(ys.min()), 5), round(float(xs.max()), 5), round(float(ys.max()), 5))
        q = tuple((round(float(x), 5), round(float(y), 5)) for x, y in zip(xs, ys))
        lines.append(TextLine(text=text, confidence=round(float(score), 4), box=box, quad=q))
    return lines


def union_box(boxes: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """Smallest box holding all ``boxes`` (x0, y0, x1, y1)."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max()))


def merge_rows(lines: Sequence[TextLine], aspect: float = 16 / 9, max_gap: float = 1.2,
               min_overlap: float = 0.5, max_height_ratio: float = 1.6) -> list[TextLine]:
    """Join boxes that continue each other on one row into single lines (pure).

    Two boxes continue each other when they overlap vertically by at least ``min_overlap`` of
    the lower box's height, their heights differ by at most ``max_height_ratio`` and the
    horizontal gap between them is at most ``max_gap`` line heights (``aspect`` = frame width /
    height converts the normalised coordinates). Texts are joined with a space, boxes united,
    and the confidence is the character-weighted mean. Order: top to bottom, left to right.
    """
    items = sorted(lines, key=lambda l: (l.box[0], l.box[1]))
    rows: list[list[TextLine]] = []
    for line in items:
        x0, y0, x1, y1 = line.box
        h = max(y1 - y0, 1e-6)
        best = None
        for row in rows:
            last = row[-1]
            lx0, ly0, lx1, ly1 = last.box
            lh = max(ly1 - ly0, 1e-6)
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap < min_overlap * min(h, lh) or max(h, lh) / min(h, lh) > max_height_ratio:
                continue
            gap = (x0 - lx1) * aspect  # in frame-height units
            if -1.0 * min(h, lh) <= gap <= max_gap * max(h, lh):
                if best is None or gap < best[0]:
                    best = (gap, row)
        if best is None:
            rows.append([line])
        else:
            best[1].append(line)
    merged = []
    for row in rows:
        if len(row) == 1:
            merged.append(row[0])
            continue
        text = " ".join(l.text for l in row)
        weights = np.array([max(len(l.text), 1) for l in row], dtype=np.float64)
        conf = float(np.dot(weights, [l.confidence for l in row]) / weights.sum())
        box = union_box([l.box for l in row])
        x0, y0, x1, y1 = box
        quad = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        merged.append(TextLine(text=text, confidence=round(conf, 4), box=box, quad=quad))
    merged.sort(key=lambda l: (round(l.box[1], 2), l.box[0]))
    return merged
