"""`vidsearch events`: every interval where a concept is present, per video, with dwell times."""
from __future__ import annotations

import csv
import sys

import click

from .base import cli, csv_safe, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option, semantics_warning
from .queryopts import refine_options, skipped_note


@cli.command("events")
@click.argument("text", nargs=-1, required=False)
@model_option
@providers_option
@click.option("--video", "video_glob", default=None, help="Only videos whose path matches this glob.")
@click.option("--high", type=click.FloatRange(-1, 1), default=None,
              help="Smoothed score where an event begins (default: half-way from the median to the best score).")
@click.option("--low", type=click.FloatRange(-1, 1), default=None,
              help="Smoothed score an event must stay above to continue (default: 40% of the way up).")
@click.option("--smooth", "smooth_s", type=click.FloatRange(min=0), default=3.0, show_default=True, help="Smoothing window in seconds.")
@click.option("--min-duration", "min_duration_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Drop events shorter than this many seconds.")
@click.option("--max-gap", "max_gap_s", type=click.FloatRange(min=0), default=None,
              help="Join events closer than this many seconds (default: two sample steps).")
@click.option("--all", "show_all", is_flag=True, help="Also list videos without events (table output).")
@refine_options
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Output CSV: one row per event.")
@pass_ctx
@handle_errors
def events_cmd(ctx, text, model, providers, video_glob, high, low, smooth_s, min_duration_s, max_gap_s, show_all,
               negatives, images, after, before, as_json, as_csv):
    """Every interval where TEXT is present in each video: first appearance, total and longest dwell.

    An event starts where the smoothed score reaches --high and lasts while it stays above --low
    (hysteresis), so a flickering presence stays one event:
    vidsearch events "a package on the doorstep" --min-duration 5 --csv > doorstep.csv
    """
    from vidsearch.models.encoder import Encoder
    from vidsearch.index.shards import IndexStore
    from vidsearch.query.models import pick_model
    from vidsearch.retro.events import CSV_COLUMNS, csv_rows, find_events, summarise

    if not text and not images:
        raise click.UsageError('say what to look for: vidsearch events "a package on the doorstep" (or --image PATH)')
    store = IndexStore(ctx.index)
    info = pick_model(store, model)
    semantics_warning(info)
    result = find_events(
        store, Encoder(info, providers=providers), list(text), negatives=list(negatives), images=[str(p) for p in images],
        video_glob=video_glob, after=after, before=before, high=high, low=low, smooth_s=smooth_s,
        max_gap_s=max_gap_s, min_duration_s=min_duration_s,
    )
    skipped_note(result.skipped_no_time)
    if as_json:
        echo_json(result.to_dict())
        return
    if as_csv:
        w = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(csv_safe(r) for r in csv_rows(result.videos))
        return
    s = summarise(result.videos)
    if not s["events"]:
        click.echo(f"no events of {result.query!r} in {result.frames_scanned} frames of {s['videos']} video(s)")
        return
    click.echo(f"{result.query!r}: {s['events']} event(s) in {s['videos_with_events']} of {s['videos']} video(s); "
               f"thresholds high {result.high:.3f}, low {result.low:.3f}")
    rows = [
        {"video": display_path(v.path), "events": len(v.events), "first": format_ts(v.first_appearance),
         "total": f"{v.total_dwell:.1f}s", "longest": f"{v.longest_dwell:.1f}s"}
        for v in result.videos if v.events or show_all
    ]
    print_table(rows, [("video", "video"), ("events", "events"), ("first", "first seen"), ("total", "total dwell"),
                       ("longest", "longest")])
    click.echo()
    rows = [
        {"video": display_path(v.path), "n": i, "start": format_ts(e.start), "end": format_ts(e.end),
         "dur": f"{e.duration:.1f}s", "peak": format_ts(e.peak_time), "score": f"{e.peak_score:.3f}"}
        for v in result.videos for i, e in enumerate(v.events, 1)
    ]
    print_table(rows, [("video", "video"), ("n", "#"), ("start", "start"), ("end", "end"), ("dur", "duration"),
                       ("peak", "peak"), ("score", "score")])
