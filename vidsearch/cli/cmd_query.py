"""`vidsearch query`: plain words in, ranked time ranges out."""
from __future__ import annotations

from pathlib import Path

import click

from ..search import load_frame_index, pick_model, text_query
from ..store import IndexStore
from .base import cli, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option, semantics_warning


@cli.command("query")
@click.argument("text", nargs=-1, required=True)
@model_option
@providers_option
@click.option("-k", "--top", type=int, default=10, show_default=True, help="How many ranges to return.")
@click.option("--min-score", type=float, default=None, help="Lowest smoothed cosine score that counts as a hit.")
@click.option("--video", "video_glob", default=None, help="Only videos whose path matches this glob.")
@click.option("--smooth", "smooth_s", type=float, default=3.0, show_default=True, help="Smoothing window in seconds.")
@click.option("--thumbnails", "thumbs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a JPEG of each range's peak frame into this directory.")
@json_option
@pass_ctx
@handle_errors
def query_cmd(ctx, text, model, providers, top, min_score, video_glob, smooth_s, thumbs, as_json):
    """Find when TEXT appears: ranked time ranges (video, start, end, peak time, peak score).

    Several quoted prompts are averaged: vidsearch query "red jacket" "person in red".
    """
    from ..encoder import Encoder

    store = IndexStore(ctx.index)
    info = pick_model(store, model)
    semantics_warning(info)
    encoder = Encoder(info, providers=providers)
    index = load_frame_index(store, info.model_id)
    result = text_query(store, encoder, list(text), index=index, top=top, min_score=min_score,
                        video_glob=video_glob, smooth_s=smooth_s)
    if thumbs:
        from ..thumbs import write_thumbnails

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
    if thumbs:
        cols.append(("thumb", "thumbnail"))
    print_table(rows, cols)
