"""Zero-shot classification of indexed frames, as in the CLIP paper (Radford et al., 2021, sec. 3.1.4).

Each label becomes several prompts through templates ("a photo of a {}."); the unit text
embeddings of one label's prompts are averaged and re-normalised (prompt ensembling, in
embedding space). A frame's probabilities are ``softmax(100 * cos(frame, label))`` over the
labels; 100 is CLIP's learned logit scale. Probabilities are smoothed over time, each frame
takes its most probable label ("uncertain" where that probability is below ``min_prob``),
and runs of frames with the same label become the video's label timeline.

:func:`classify_frames` runs this over an index; the CLIP maths is :mod:`vidsearch.core.clip`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from vidsearch.core.clip import LOGIT_SCALE, ensemble_groups, softmax_probs
from vidsearch.core.ranges import sample_step, smooth
from vidsearch.errors import UserError
from vidsearch.index.matrix import matmul
from vidsearch.index.shards import IndexStore
from vidsearch.query.engine import FrameIndex, load_frame_index, select_frames, video_series

UNCERTAIN = "uncertain"

#: Prompt templates for frames of surveillance and archive video. Chosen from the CLIP paper's
#: ImageNet templates (those that describe photo quality, which varies most in such footage)
#: plus camera-specific ones. None contains a colour or other content word.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of a {}.",
    "a security camera photo of a {}.",
    "a CCTV still of a {}.",
    "a video frame showing a {}.",
)


def parse_labels(text: str | Sequence[str]) -> list[str]:
    """``"delivery, person,car"`` (or a list of such strings) -> ["delivery", "person", "car"]."""
    items = [text] if isinstance(text, str) else list(text)
    labels: list[str] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part and part not in labels:
                labels.append(part)
    if len(labels) < 2:
        raise UserError('classification needs at least two labels, e.g. --labels "delivery,person,car,empty street"')
    if UNCERTAIN in labels:
        raise UserError(f'"{UNCERTAIN}" is reserved for frames below --min-prob; call that label something else')
    return labels


def check_templates(templates: Sequence[str]) -> list[str]:
    out = [t for t in templates if t.strip()]
    if not out:
        raise UserError('no prompt templates: pass --template "a photo of a {}." (or leave it out for the defaults)')
    for t in out:
        if t.count("{}") != 1:
            raise UserError(f'template {t!r} must contain {{}} exactly once, where the label goes, e.g. "a photo of a {{}}."')
    return out


def prompts_for(label: str, templates: Sequence[str]) -> list[str]:
    return [t.replace("{}", label) for t in templates]


def label_vectors(encoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> tuple[np.ndarray, list[str]]:
    """(unit label embeddings [K, dim], labels the model cannot embed at all).

    All prompts are embedded in one batch.
    """
    templates = check_templates(templates)
    prompts = [p for lab in labels for p in prompts_for(lab, templates)]
    mat = ensemble_groups(encoder.encode_texts(prompts), len(labels))
    unknown = [lab for lab, v in zip(labels, mat) if not np.any(v)]
    return mat, unknown


def frame_probs(emb: np.ndarray, label_mat: np.ndarray, scale: float = LOGIT_SCALE) -> np.ndarray:
    """Per-frame label probabilities for unit frame embeddings [N, dim] (float32 or the float16 search matrix)."""
    cos = matmul(emb, np.asarray(label_mat, dtype=np.float32).T)  # no full float32 copy of the matrix
    return softmax_probs(cos, scale)


@dataclasses.dataclass
class Segment:
    label: str
    start: float
    end: float
    frames: int
    mean_prob: float  # mean (smoothed) probability of this label over the segment

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {
            "label": self.label, "start": round(self.start, 3), "end": round(self.end, 3),
            "duration": round(self.duration, 3), "frames": self.frames, "mean_prob": round(self.mean_prob, 4),
        }


@dataclasses.dataclass
class VideoLabels:
    video_id: str
    path: str | None
    segments: list[Segment]
    frames: int

    def totals(self) -> dict[str, float]:
        """Seconds per label (labels in order of first appearance)."""
        out: dict[str, float] = {}
        for s in self.segments:
            out[s.label] = round(out.get(s.label, 0.0) + s.duration, 3)
        return out

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id, "path": self.path, "frames": self.frames,
            "totals": self.totals(), "segments": [s.to_dict() for s in self.segments],
        }


def label_timeline(
    video_id: str,
    pts: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    *,
    smooth_s: float = 3.0,
    min_prob: float | None = None,
    min_segment_s: float = 0.0,
    duration: float | None = None,
    path: str | None = None,
) -> VideoLabels:
    """Runs of the same most-probable label over one video's frames, in time order.

    Probabilities are smoothed over ``smooth_s`` seconds (centred moving average, per label)
    before the argmax; a frame whose best probability is below ``min_prob`` is "uncertain".
    With ``min_segment_s``, shorter runs are merged into the run before them (so a one-frame
    flicker does not split a segment). A segment ends where the next begins, or one sample step after its last frame (clipped to
    ``duration``) when the next frame is further away.
    """
    pts = np.asarray(pts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(pts, kind="stable")
    pts, probs = pts[order], probs[order]
    if len(pts) == 0:
        return VideoLabels(video_id, path, [], 0)
    sm = np.stack([smooth(pts, probs[:, k], smooth_s) for k in range(probs.shape[1])], axis=1)
    best = np.argmax(sm, axis=1)
    best_p = sm[np.arange(len(best)), best]
    if min_prob is not None:
        best = np.where(best_p < min_prob, -1, best)
    names = list(labels)
    step = sample_step(pts)
    if min_segment_s > 0:
        # a run shorter than min_segment_s takes the label of the run before it (the first run: after it)
        for i0, i1 in _runs(best):
            if pts[i1] + step - pts[i0] < min_segment_s - 1e-9 and (i0 > 0 or i1 + 1 < len(best)):
                best[i0 : i1 + 1] = best[i0 - 1] if i0 > 0 else best[i1 + 1]
    segments = []
    for i0, i1 in _runs(best):
        end = pts[i1] + step
        if i1 + 1 < len(pts):
            end = min(end, pts[i1 + 1])
        if duration is not None:
            end = min(end, duration)
        k = int(best[i0])
        segments.append(Segment(
            label=UNCERTAIN if k < 0 else names[k], start=float(pts[i0]), end=float(max(end, pts[i1])),
            frames=i1 - i0 + 1, mean_prob=float(np.mean(best_p[i0 : i1 + 1] if k < 0 else sm[i0 : i1 + 1, k])),
        ))
    return VideoLabels(video_id, path, segments, len(pts))


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs of equal values."""
    if len(labels) == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], cuts, [len(labels)]])
    return [(int(a), int(b) - 1) for a, b in zip(bounds[:-1], bounds[1:])]


@dataclasses.dataclass
class ClassifyResult:
    labels: list[str]
    templates: list[str]
    unknown_labels: list[str]
    model_id: str
    semantics: str
    smooth_s: float
    min_prob: float | None
    videos: list[VideoLabels]
    frames_scanned: int
    seconds: float

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in self.videos:
            for k, s in v.totals().items():
                out[k] = round(out.get(k, 0.0) + s, 3)
        return out

    def to_dict(self) -> dict:
        return {
            "labels": self.labels, "templates": self.templates, "unknown_labels": self.unknown_labels,
            "model_id": self.model_id, "semantics": self.semantics, "smooth_s": self.smooth_s, "min_prob": self.min_prob,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4), "totals": self.totals(),
            "videos": [v.to_dict() for v in self.videos],
        }


def classify_frames(
    store: IndexStore,
    encoder,
    labels: Sequence[str],
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    index: FrameIndex | None = None,
    video_glob: str | None = None,
    after=None,
    before=None,
    smooth_s: float = 3.0,
    min_prob: float | None = None,
    min_segment_s: float = 0.0,
) -> ClassifyResult:
    """A label timeline per video: zero-shot classification of every indexed frame."""
    t0 = time.perf_counter()
    templates = check_templates(templates)
    mat, unknown = label_vectors(encoder, labels, templates)
    if len(unknown) == len(labels):
        raise UserError(f"model {encoder.info.name} cannot embed any of these labels ({', '.join(labels)}); "
                        "use words it knows (the demo model knows only colours)")
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    # one pass over the (possibly memory-mapped float16) matrix scores every label at once;
    # labels describe the whole scene: with regions, the whole-frame rows (region 0) are classified
    probs = frame_probs(index.emb, mat)[index.whole_frame_rows()]
    videos = [
        label_timeline(s.video_id, s.pts, s.values, labels, smooth_s=smooth_s, min_prob=min_prob,
                       min_segment_s=min_segment_s, duration=s.duration, path=s.path)
        for s in video_series(index, sel, probs)
    ]
    return ClassifyResult(
        labels=list(labels), templates=list(templates), unknown_labels=unknown, model_id=index.model_id,
        semantics=encoder.info.semantics, smooth_s=smooth_s, min_prob=min_prob, videos=videos,
        frames_scanned=int(sum(len(g) for g in sel.groups.values())), seconds=time.perf_counter() - t0,
    )
