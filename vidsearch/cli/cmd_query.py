"""`vidsearch query`: plain words in, ranked time ranges out."""
from __future__ import annotations

from pathlib import Path

import click

from vidsearch.query.engine import load_frame_index, parse_when, pick_model, text_query
from vidsearch.index.shards import IndexStore
from .base import cli, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option, semantics_warning
from .queryopts import damaged_note, refine_options, skipped_note


@cli.command("query")
@click.argument("text", nargs=-1, required=False)
@click.option("--text-in-frame", "text_in_frame", default=None, metavar="TEXT",
              help="Ranges where this text is on screen (exact, fuzzy or by meaning; needs `ingest --ocr`). "
                   "With a visual TEXT too, only ranges where both hold.")
@model_option
@providers_option
@click.option("-k", "--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many ranges to return.")
@click.option("--min-score", type=click.FloatRange(-1, 1), default=None, help="Lowest smoothed cosine score that counts as a hit.")
@click.option("--video", "video_glob", default=None, help="Only videos whose path matches this glob.")
@click.option("--smooth", "smooth_s", type=click.FloatRange(min=0), default=3.0, show_default=True, help="Smoothing window in seconds.")
@click.option("--thumbnails", "thumbs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a JPEG of each range's peak frame into this directory.")
@refine_options
@json_option
@pass_ctx
@handle_errors
def query_cmd(ctx, text, text_in_frame, model, providers, top, min_score, video_glob, smooth_s, thumbs, negatives, images,
              after, before, as_json):
    """Find when TEXT appears: ranked time ranges (video, start, end, peak time, peak score).

    Several quoted prompts are averaged: vidsearch query "red jacket" "person in red".
    On-screen text: vidsearch query --text-in-frame "EMERGENCY EXIT" (after ingest --ocr).
    Refine with --not "person in blue", search by example with --image PATH, and limit to
    recorded times with --after/--before (files that carry a creation time).
    """
    from vidsearch.models.encoder import Encoder

    text = tuple(t for t in text if t.strip())
    if not text and not text_in_frame and not images:
        raise click.UsageError('say what to look for: vidsearch query "person in a red jacket" and/or --text-in-frame "EXIT"')
    visual = bool(text or images)
    if negatives and not visual:
        raise click.UsageError("--not steers a visual query away from something: give TEXT or --image too")
    after, before = parse_when(after), parse_when(before)  # a mistyped time fails before any model loads
    store = IndexStore(ctx.index)
    in_frame = None
    if text_in_frame:
        from vidsearch.ocr.channel import text_ranges

        # with a visual query too, every text range may meet a visual one: rank after intersecting
        in_frame = text_ranges(store, text_in_frame, top=None if visual else top,
                               min_score=None if visual else min_score, video_glob=video_glob,
                               after=after, before=before)
    if not visual:
        result = in_frame
        skipped_note(result.skipped_no_time)
    else:
        info = pick_model(store, model)
        semantics_warning(info)
        encoder = Encoder(info, providers=providers)
        index = load_frame_index(store, info.model_id)
        damaged_note(index)
        result = text_query(store, encoder, list(text), index=index, top=None if in_frame else top,
                            min_score=min_score, video_glob=video_glob, smooth_s=smooth_s, negatives=list(negatives),
                            images=[str(p) for p in images], after=after, before=before)
        skipped_note(result.skipped_no_time)
        if in_frame is not None:
            from vidsearch.ocr.channel import both

            result = both(result, in_frame, top)
    if thumbs:
        from vidsearch.media.thumbs import write_thumbnails

        write_thumbnails(result.ranges, thumbs)
    if as_json:
        echo_json(result.to_dict())
        return
    if not result.ranges:
        click.echo(f"no matches for {result.query!r} in {result.frames_scanned} frames")
        return
    rows = [
        {"rank": i + 1, "video": display_path(r.path), "start": format_ts(r.start), "end": format_ts(r.end),
         "peak": format_ts(r.peak_time), "score": f"{r.peak_score:.3f}", "thumb": r.thumbnail or ""}
        for i, r in enumerate(result.ranges)
    ]
    cols = [("rank", "#"), ("video", "video"), ("start", "start"), ("end", "end"), ("peak", "peak"), ("score", "score")]
    if in_frame is not None:  # what was read on screen, and how it matched
        for row, r in zip(rows, result.ranges):
            row["text"] = f"{getattr(r, 'text', '')} ({getattr(r, 'match', '')})"
        cols.append(("text", "on screen"))
    if thumbs:
        cols.append(("thumb", "thumbnail"))
    print_table(rows, cols)
