"""Query engine: score every indexed frame against a query vector, return ranked time ranges."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.retro.classify import LOGIT_SCALE  # CLIP's learned logit scale (exp(4.6052) = 100)
from vidsearch.errors import first_line, IndexError_, ModelError, UserError
from vidsearch.models.contract import ModelInfo, installed_models, load_model_info
from vidsearch.settings import read_config
from vidsearch.core.ranges import TimeRange, adaptive_threshold, rank, video_ranges
from vidsearch.index.catalog import Catalog
from vidsearch.index.frames import FrameIndex, load_frame_index  # noqa: F401 - re-exported
from vidsearch.index.shards import IndexStore


@dataclasses.dataclass
class QueryResult:
    query: str
    model_id: str
    semantics: str
    threshold: float
    frames_scanned: int
    ranges: list[TimeRange]
    seconds: float
    #: what was asked, in full (``query`` is a one-line label): positive prompts, negative
    #: prompts, example image paths, the smoothing window; ``vidsearch export`` re-scores with them
    prompts: list[str] = dataclasses.field(default_factory=list)
    negatives: list[str] = dataclasses.field(default_factory=list)
    images: list[str] = dataclasses.field(default_factory=list)
    smooth_s: float | None = None
    #: videos left out by --after/--before because the file carries no creation time
    skipped_no_time: int = 0

    def to_dict(self) -> dict:
        return {
            "query": self.query, "model_id": self.model_id, "semantics": self.semantics,
            "threshold": round(self.threshold, 5) if np.isfinite(self.threshold) else None,
            "frames_scanned": self.frames_scanned, "seconds": round(self.seconds, 4),
            "prompts": list(self.prompts), "negatives": list(self.negatives), "images": list(self.images),
            "smooth_s": self.smooth_s, "skipped_no_time": self.skipped_no_time,
            "ranges": [r.to_dict() for r in self.ranges],
        }


def indexed_models(store: IndexStore) -> list[tuple[str, str]]:
    """(model_id, name) of the models that have frames in this index."""
    if not store.catalog_path.exists():
        return []
    with Catalog(store, read_only=True) as cat:
        return cat.indexed_models()


def pick_model(store: IndexStore, requested: str | None) -> ModelInfo:
    """The model to query with: the one asked for, else the default, else the only one indexed."""
    have = indexed_models(store)
    if not have:
        raise IndexError_(f"the index at {store.root} has no frames yet: run `vidsearch ingest DIR` first")
    ids = {m for m, _ in have}
    names = ", ".join(f"{n} ({m})" for m, n in have)
    if requested:
        info = load_model_info(requested)
        if info.model_id not in ids:
            raise UserError(
                f"model {info.model_id} has not indexed anything here; this index was built with {names}: "
                f"query with --model {have[0][1]} (or ingest again with --model {requested})"
            )
        return info
    default = read_config().get("default_model")
    candidates = []
    if default:
        try:
            info = load_model_info(default)
            if info.model_id in ids:
                return info
        except ModelError:
            pass
    for info in installed_models():
        if info.model_id in ids:
            candidates.append(info)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"none of the models that built this index is installed ({names}); install it or pass --model DIR")
    raise UserError(f"this index holds several models ({names}); choose one with --model")


def combine(vectors: np.ndarray) -> np.ndarray:
    """Average of unit vectors, re-normalised (prompt ensembling)."""
    v = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def search_vector(
    store: IndexStore,
    index: FrameIndex,
    query_vec: np.ndarray,
    *,
    label: str,
    semantics: str = "clip",
    top: int = 10,
    min_score: float | None = None,
    video_glob: str | None = None,
    smooth_s: float = 3.0,
    scores: np.ndarray | None = None,
    after: _dt.datetime | None = None,
    before: _dt.datetime | None = None,
) -> QueryResult:
    t0 = time.perf_counter()
    sel = select_frames(store, index, video_glob=video_glob, after=after, before=before)
    paths, durations, groups = sel.paths, sel.durations, sel.groups
    if scores is None:
        scores = index.scores(query_vec) if len(index) else np.zeros(0, np.float32)
    n_considered = sum(len(g) for g in groups.values())
    if n_considered == len(scores):  # every row (the groups are disjoint): no gather
        threshold = adaptive_threshold(scores, min_score) if n_considered else float("inf")
    else:
        considered = np.concatenate(list(groups.values())) if groups else np.zeros(0, dtype=np.int64)
        threshold = adaptive_threshold(scores[considered], min_score) if len(considered) else float("inf")
    found: list[TimeRange] = []
    for code, rows in groups.items():
        vid = index.videos[code]
        if not len(rows) or scores[rows].max() < threshold - 1e-9:
            continue  # a smoothed score never exceeds the video's best frame: no range here
        for r in video_ranges(vid, index.pts[rows], scores[rows], threshold, smooth_s=smooth_s, duration=durations.get(vid)):
            r.path = paths.get(vid)
            found.append(r)
    return QueryResult(
        query=label, model_id=index.model_id, semantics=semantics, threshold=threshold,
        frames_scanned=int(n_considered), ranges=rank(found, top), seconds=time.perf_counter() - t0,
        smooth_s=smooth_s, skipped_no_time=sel.skipped_no_time,
    )


def _glob_match(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) or fnmatch.fnmatch(path, f"*{pattern}*")


def text_query(
    store: IndexStore,
    encoder,
    texts: Sequence[str],
    index: FrameIndex | None = None,
    negatives: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    **kw,
) -> QueryResult:
    """Embed ``texts`` (several prompts are averaged) and search.

    ``images``: example images whose embeddings join the positive prompts (query by example).
    ``negatives``: prompts to steer away from; see :func:`contrast_scores` for the formula.
    """
    texts = [t for t in texts if t and t.strip()]
    if not texts and not images:
        raise UserError("empty query: say what to look for, e.g. vidsearch query \"person in a red jacket\" (or --image PATH)")
    index = index if index is not None else load_frame_index(store, encoder.info.model_id)
    label = query_label(texts, negatives, images)
    pos, negs = query_vectors(encoder, texts, negatives, images)
    extra = dict(prompts=list(texts), negatives=list(negatives), images=[str(p) for p in images],
                 smooth_s=kw.get("smooth_s", 3.0))
    if not np.any(pos):
        # e.g. the colour demo model asked about something that is not a colour
        return QueryResult(label, index.model_id, encoder.info.semantics, float("inf"), len(index), [], 0.0, **extra)
    scores = contrast_scores(index.scores(pos), [index.scores(n) for n in negs]) if len(negs) and len(index) else None
    result = search_vector(store, index, pos, label=label, semantics=encoder.info.semantics, scores=scores, **kw)
    result.prompts, result.negatives, result.images = extra["prompts"], extra["negatives"], extra["images"]
    return result


# -- query refinements: negative prompts, example images, recorded-time filters ----------------


def query_label(texts: Sequence[str], negatives: Sequence[str] = (), images: Sequence[str | Path] = ()) -> str:
    """One line naming the query: ``red | crimson + image:cat.png - not: blue``."""
    parts = [" | ".join(texts)] if texts else []
    parts += [f"image:{Path(p).name}" for p in images]
    label = " + ".join(parts)
    if negatives:
        label += " - not: " + " | ".join(negatives)
    return label


def load_image_pixels(path: str | Path, info: ModelInfo) -> np.ndarray:
    """An image file as the image tower's input [1,3,S,S]: shortest side to S, centre crop, mean/std."""
    from PIL import Image, UnidentifiedImageError

    from vidsearch.core.preprocess import center_crop, resize_dims, to_tensor

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = resize_dims(im.width, im.height, info.image_size)
            arr = np.asarray(im.resize((w, h), Image.BICUBIC))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"{path}: cannot read the image ({first_line(e)}); pass a JPEG or PNG") from None
    return to_tensor([center_crop(arr, info.image_size)], info.mean, info.std)


def image_vectors(encoder, paths: Sequence[str | Path]) -> np.ndarray:
    """Unit embeddings [N, dim] of example images."""
    if not paths:
        return np.zeros((0, encoder.info.dim), dtype=np.float32)
    return encoder.encode_images(np.concatenate([load_image_pixels(p, encoder.info) for p in paths]))


def query_vectors(encoder, texts: Sequence[str], negatives: Sequence[str] = (), images: Sequence[str | Path] = ()):
    """(positive unit vector, [negative unit vectors]).

    The positive vector averages the unit embeddings of every prompt and example image
    (:func:`combine`). Negative prompts the model cannot embed (a zero vector) are dropped.
    """
    vecs = []
    if texts:
        vecs.append(encoder.encode_texts(list(texts)))
    if images:
        vecs.append(image_vectors(encoder, images))
    pos = combine(np.concatenate(vecs)) if vecs else np.zeros(encoder.info.dim, np.float32)
    negs = [v for v in (encoder.encode_texts(list(negatives)) if negatives else []) if np.any(v)]
    return pos, negs


def contrast_scores(pos: np.ndarray, negs: Sequence[np.ndarray], scale: float = LOGIT_SCALE) -> np.ndarray:
    """Score with negative prompts: ``cos(x, q+) * P(q+ | x)``.

    ``P(q+ | x)`` is CLIP zero-shot classification of the frame between the positive prompt and
    each negative prompt: ``softmax(scale * [cos(x,q+), cos(x,q-1), ...])[0]``. A frame that the
    model finds closer to a negative prompt loses almost all its score; a frame that matches the
    positive prompt better keeps its cosine (so scores stay on the usual scale and the adaptive
    threshold works as without negatives).
    """
    pos = np.asarray(pos, dtype=np.float64)
    if not len(negs):
        return pos.astype(np.float32)
    logits = scale * np.stack([pos, *[np.asarray(n, dtype=np.float64) for n in negs]])
    logits -= logits.max(axis=0, keepdims=True)
    e = np.exp(logits)
    p = e[0] / e.sum(axis=0)
    return (pos * p).astype(np.float32)


def parse_when(text: str | _dt.datetime | None) -> _dt.datetime | None:
    """A user's time (ISO 8601: ``2026-11-02``, ``2026-11-02 08:30``, ``...T08:30:00+01:00``) as aware UTC.

    A time without an offset is UTC, like the ``creation_time`` MP4/MOV files carry.
    """
    if text is None or text == "":
        return None
    if isinstance(text, _dt.datetime):
        t = text
    else:
        s = str(text).strip()
        try:
            t = _dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        except ValueError:
            raise UserError(f"cannot read the time {text!r}: use ISO 8601, e.g. 2026-11-02 or 2026-11-02T08:30:00Z") from None
    return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(_dt.timezone.utc)


def parse_creation_time(value: str | None) -> _dt.datetime | None:
    """A file's ``creation_time`` tag as aware UTC, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return parse_when(value)
    except UserError:
        return None


@dataclasses.dataclass
class FrameSelection:
    """The frames a query looks at: row indices per video code, after the video and time filters."""

    groups: dict[int, np.ndarray]  # video code -> row indices in time order
    paths: dict[str, str]
    durations: dict[str, float]
    created: dict[str, _dt.datetime | None]
    skipped_no_time: int = 0


def select_frames(
    store: IndexStore,
    index: FrameIndex,
    *,
    video_glob: str | None = None,
    after: _dt.datetime | None = None,
    before: _dt.datetime | None = None,
) -> FrameSelection:
    """Rows of ``index`` per video, filtered by path glob and by recorded time.

    Recorded time of a frame = the file's ``creation_time`` + the frame's pts. With ``after`` /
    ``before`` only frames recorded in ``[after, before)`` count; videos whose file carries no
    creation time are left out (and counted in ``skipped_no_time``).
    """
    with Catalog(store, read_only=True) as cat:
        rows = cat.video_meta()
    paths = {v: p for v, p, _, _ in rows}
    durations = {v: d for v, _, d, _ in rows}
    created = {v: parse_creation_time(c) for v, _, _, c in rows}
    groups = index.rows_by_video()
    if video_glob:
        groups = {c: g for c, g in groups.items() if _glob_match(paths.get(index.videos[c], ""), video_glob)}
    skipped = 0
    after, before = parse_when(after), parse_when(before)
    if after is not None or before is not None:
        kept = {}
        for c, g in groups.items():
            mask = recorded_mask(created.get(index.videos[c]), index.pts[g], after, before)
            if mask is None:
                skipped += 1
            elif mask.any():
                kept[c] = g[mask]
        groups = kept
    return FrameSelection(groups, paths, durations, created, skipped)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def recorded_mask(created: _dt.datetime | None, pts: np.ndarray, after: _dt.datetime | None,
                  before: _dt.datetime | None) -> np.ndarray | None:
    """Which frames (times ``pts`` into a file created at ``created``) were recorded in
    ``[after, before)`` (pure); None when the file carries no creation time."""
    if created is None:
        return None
    rec = (created - _EPOCH).total_seconds() + np.asarray(pts, dtype=np.float64)
    mask = np.ones(len(rec), dtype=bool)
    if after is not None:
        mask &= rec >= (after - _EPOCH).total_seconds() - 1e-6
    if before is not None:
        mask &= rec < (before - _EPOCH).total_seconds() - 1e-6
    return mask


@dataclasses.dataclass
class VideoSeries:
    """One video's frame times and scores (time order), for events, labels and plots."""

    video_id: str
    path: str | None
    duration: float | None
    creation_time: _dt.datetime | None
    pts: np.ndarray
    values: np.ndarray  # [N] scores, or [N, K] per-label values


def video_series(index: FrameIndex, sel: FrameSelection, values: np.ndarray) -> list[VideoSeries]:
    """Split per-frame ``values`` (row-aligned with ``index``) into one series per selected video, by path."""
    out = []
    for code, rows in sel.groups.items():
        vid = index.videos[code]
        out.append(VideoSeries(vid, sel.paths.get(vid), sel.durations.get(vid), sel.created.get(vid), index.pts[rows], values[rows]))
    return sorted(out, key=lambda s: (s.path or "", s.video_id))
