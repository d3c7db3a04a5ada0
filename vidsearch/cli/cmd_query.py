"""`vidsearch query`: plain words in, ranked time ranges out."""
from __future__ import annotations

from pathlib import Path

import click

from .base import FAST_EXIT, cli, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
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
    from vidsearch.query.service import run_query

    text = tuple(t for t in text if t.strip())
    if not text and not text_in_frame and not images:
        raise click.UsageError('say what to look for: vidsearch query "person in a red jacket" and/or --text-in-frame "EXIT"')
    if negatives and not (text or images):
        raise click.UsageError("--not steers a visual query away from something: give TEXT or --image too")
    from vidsearch.index.shards import IndexStore

    store = IndexStore(ctx.index)

    def open_encoder():
        from vidsearch.query.models import pick_model
        from vidsearch.query.prompts import CachedTextEncoder

        info = pick_model(store, model)
        semantics_warning(info)

        def tower():
            from vidsearch.models.encoder import Encoder

            return Encoder(info, providers=providers)

        return CachedTextEncoder(info, tower)  # a repeated prompt needs no text tower

    result = run_query(store, list(text), open_encoder, text_in_frame=text_in_frame, negatives=list(negatives),
                       images=[str(p) for p in images], top=top, min_score=min_score, video_glob=video_glob,
                       smooth_s=smooth_s, after=after, before=before, on_index=damaged_note)
    skipped_note(result.skipped_no_time)
    if thumbs:
        from vidsearch.media.thumbs import write_thumbnails

        write_thumbnails(result.ranges, thumbs)
    if as_json:
        echo_json(result.to_dict())
    elif not result.ranges:
        click.echo(f"no matches for {result.query!r} in {result.frames_scanned} frames")
    else:
        weak_note(result)
        _print_ranges(result.ranges, on_screen=bool(text_in_frame), thumbs=bool(thumbs))
    FAST_EXIT["ok"] = True  # everything is written: the process may end without interpreter teardown


def weak_note(result) -> None:
    """One line above the table when ranges do not stand out (``weak``: core.ranges.WEAK_RULE)."""
    from vidsearch.core.ranges import WEAK_RULE

    weak = [i for i, r in enumerate(result.ranges, 1) if r.weak]
    if weak:
        which = ("no range stands out" if len(weak) == len(result.ranges)
                 else "ranges " + ", ".join(f"#{i}" for i in weak) + " do not stand out")
        click.echo(f"weak results: {which} in {result.frames_scanned} frames ({WEAK_RULE})")


def _print_ranges(ranges, *, on_screen: bool, thumbs: bool) -> None:
    rows = [
        {"rank": i + 1, "video": display_path(r.path), "start": format_ts(r.start), "end": format_ts(r.end),
         "peak": format_ts(r.peak_time), "score": f"{r.peak_score:.3f}", "thumb": r.thumbnail or ""}
        for i, r in enumerate(ranges)
    ]
    cols = [("rank", "#"), ("video", "video"), ("start", "start"), ("end", "end"), ("peak", "peak"), ("score", "score")]
    if any(getattr(r, "box", None) is not None for r in ranges):  # an index with regions: where the hit is
        from vidsearch.core.regions import where

        for row, r in zip(rows, ranges):
            row["where"] = where(getattr(r, "box", None))
        cols.append(("where", "where"))
    if on_screen:  # what was read on screen, and how it matched
        for row, r in zip(rows, ranges):
            row["text"] = f"{getattr(r, 'text', '')} ({getattr(r, 'match', '')})"
        cols.append(("text", "on screen"))
    if thumbs:
        cols.append(("thumb", "thumbnail"))
    print_table(rows, cols)
