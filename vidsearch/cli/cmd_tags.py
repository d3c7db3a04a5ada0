"""`vidsearch tags`: what is in the archive (zero-shot tags over time); `vidsearch tags build` tags it."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from .base import cli, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option, semantics_warning

CSV_FIELDS = ["tag", "path", "video_id", "start", "end", "duration", "score", "frames", "recorded_at"]


@cli.group("tags", invoke_without_command=True)
@click.option("--video", "video_glob", default=None, help="Only videos whose path matches this glob.")
@click.option("--after", default=None, metavar="TIME", help="Only time recorded at or after TIME (ISO 8601, UTC by default).")
@click.option("--before", default=None, metavar="TIME", help="Only time recorded before TIME.")
@click.option("--tag", "tag", default=None, help='List the ranges of this tag only, e.g. --tag "truck".')
@click.option("--top", type=click.IntRange(min=1), default=30, show_default=True, help="Tags shown in the table.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Output CSV: one row per range.")
@pass_ctx
@click.pass_context
@handle_errors
def tags_group(click_ctx, ctx, video_glob, after, before, tag, top, as_json, as_csv):
    """The archive's tags, ranked by total time and number of videos, each with its time ranges.

    Tags come from `vidsearch tags build` (or `ingest --tags`): every frame is scored against a
    vocabulary of everyday concepts and each tag is calibrated against the archive's own scores
    (see docs/tags.md). vidsearch tags --video "cam-street/*" --after 2026-11-02T20:00
    """
    if click_ctx.invoked_subcommand is not None:
        return
    from vidsearch.index.shards import IndexStore
    from vidsearch.retro.tags import list_tags

    result = list_tags(IndexStore(ctx.index), video_glob=video_glob, after=after, before=before, tag=tag)
    if as_json:
        echo_json(result.to_dict())
    elif as_csv:
        _write_csv(result)
    elif tag:
        _print_ranges(result, tag)
    else:
        _print_summary(result, top)


def _write_csv(result) -> None:
    w = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for t in result.tags:
        for r in t.ranges:
            w.writerow({"tag": t.tag, "path": r["path"], "video_id": r["video_id"], "start": r["start"], "end": r["end"],
                        "duration": round(r["end"] - r["start"], 3), "score": r["score"], "frames": r["frames"],
                        "recorded_at": r["recorded_at"] or ""})


def _print_summary(result, top: int) -> None:
    if not result.tags:
        click.echo("no tags in the selected time")
        return
    rows = [{"tag": t.tag, "time": format_ts(t.seconds), "videos": t.videos, "ranges": len(t.ranges),
             "where": ", ".join(f"{display_path(r['path'])} {format_ts(r['start'])}-{format_ts(r['end'])}" for r in t.ranges[:2])
             + (" ..." if len(t.ranges) > 2 else "")} for t in result.tags[:top]]
    print_table(rows, [("tag", "tag"), ("time", "total time"), ("videos", "videos"), ("ranges", "ranges"), ("where", "first ranges")])
    if len(result.tags) > top:
        click.echo(f"... and {len(result.tags) - top} more tags (--top N, --json or --csv for all)")
    if result.skipped_no_time:
        click.echo(f"{result.skipped_no_time} videos without a recording time left out by --after/--before", err=True)


def _print_ranges(result, tag: str) -> None:
    if not result.tags:
        click.echo(f"no ranges tagged {tag!r}")
        return
    rows = [{"video": display_path(r["path"]), "start": format_ts(r["start"]), "end": format_ts(r["end"]),
             "dur": f"{r['end'] - r['start']:.1f}s", "score": f"{r['score']:.3f}"} for t in result.tags for r in t.ranges]
    print_table(rows, [("video", "video"), ("start", "start"), ("end", "end"), ("dur", "duration"), ("score", "score")])


@tags_group.command("build")
@model_option
@providers_option
@click.option("--vocab", "vocab", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Replace the built-in vocabulary with this file (one tag per line, # comments).")
@click.option("--vocab-add", "vocab_add", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Add the tags of this file to the vocabulary (repeatable).")
@json_option
@pass_ctx
@handle_errors
def tags_build_cmd(ctx, model, providers, vocab, vocab_add, as_json):
    """Tag every indexed frame not tagged yet (incremental, like ingest).

    Reads the stored image embeddings (no decoding); a new model or vocabulary tags everything
    again. Without --vocab/--vocab-add the index keeps the vocabulary it was last tagged with.
    """
    from vidsearch.index.shards import IndexStore
    from vidsearch.models.encoder import Encoder
    from vidsearch.query.models import pick_model
    from vidsearch.retro.tags import build, choose_vocabulary

    store = IndexStore(ctx.index)
    info = pick_model(store, model)
    semantics_warning(info)
    report = build(store, Encoder(info, providers=providers), choose_vocabulary(store, vocab, vocab_add))
    if as_json:
        echo_json(report)
        return
    click.echo(f"{report['chunks_tagged']} chunks tagged ({report['frames']} frames), {report['chunks_skipped']} already done, "
               f"{report['chunks_removed']} removed, {report['chunks_failed']} failed; {report['tags']} tags "
               f"({report['unknown_tags']} the model cannot embed); {report['ranges']} ranges"
               f"{' (recalibrated)' if report['recalibrated'] else ''} in {report['seconds']:.1f}s")
    for f in report["failures"]:
        click.echo(f"failed: {f}", err=True)
