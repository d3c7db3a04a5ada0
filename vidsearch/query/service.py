"""One query over both channels: what is seen (CLIP frames) and what is written on screen (OCR).

Kept apart from :mod:`vidsearch.query.engine` because the OCR channel builds on the engine.
"""
from __future__ import annotations

from typing import Callable, Sequence

from vidsearch.core.timeparse import parse_when
from vidsearch.index.shards import IndexStore
from vidsearch.query.engine import QueryResult, load_frame_index, text_query


def run_query(
    store: IndexStore,
    texts: Sequence[str],
    open_encoder: Callable[[], object],
    *,
    text_in_frame: str | None = None,
    negatives: Sequence[str] = (),
    images: Sequence[str] = (),
    top: int = 10,
    min_score: float | None = None,
    video_glob: str | None = None,
    smooth_s: float = 3.0,
    after=None,
    before=None,
    on_index: Callable[[object], None] | None = None,
) -> QueryResult:
    """Ranked ranges for ``texts`` / ``images`` and/or ``text_in_frame``; with both, only where both hold.

    ``open_encoder`` is called only for a visual query (after the text channel ran), so a
    mistyped time or an OCR-only query never loads the model. ``on_index`` sees the frame index
    before it is scored (the CLI reports damaged shards left out of it).
    """
    after, before = parse_when(after), parse_when(before)
    visual = bool(texts or images)
    in_frame = None
    if text_in_frame:
        from vidsearch.query.text import text_ranges  # the OCR channel: not imported by a visual query (~30 ms)

        # with a visual query too, every text range may meet a visual one: rank after intersecting
        in_frame = text_ranges(store, text_in_frame, top=None if visual else top,
                               min_score=None if visual else min_score, video_glob=video_glob,
                               after=after, before=before)
    if not visual:
        return in_frame
    encoder = open_encoder()
    index = load_frame_index(store, encoder.info.model_id)
    if on_index is not None:
        on_index(index)
    result = text_query(store, encoder, list(texts), index=index, top=None if in_frame else top,
                        min_score=min_score, video_glob=video_glob, smooth_s=smooth_s, negatives=list(negatives),
                        images=list(images), after=after, before=before)
    if in_frame is None:
        return result
    from vidsearch.query.text import visual_and_text

    return visual_and_text(result, in_frame, top)
