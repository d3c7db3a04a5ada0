"""`vidsearch status`: what the index holds, what is pending, what failed."""
from __future__ import annotations

import click

from vidsearch.index.shards import IndexStore
from vidsearch.ingest.status import index_status
from .base import cli, echo_json, escape_line, handle_errors, json_option, pass_ctx


@cli.command("status")
@click.option("--videos", "per_video", is_flag=True, help="Also list chunks done / pending / failed per video.")
@click.option("--rebuild", is_flag=True,
              help="Re-read every chunk marker under shards/ (e.g. after copying shards in or deleting the "
                   "catalog); by default only the chunks not yet done are looked at again.")
@json_option
@pass_ctx
@handle_errors
def status_cmd(ctx, per_video, rebuild, as_json):
    """Summarise the index: videos, hours, frames, chunks pending / done / failed, failures."""
    summary = index_status(IndexStore(ctx.index), rebuild=rebuild)
    if not per_video and not as_json:
        summary.pop("per_video")
    if as_json:
        echo_json(summary)
        return
    c = summary["chunks"]
    click.echo(f"index: {summary['index']}")
    click.echo(f"{summary['videos']} videos, {summary['hours']:.2f} hours, {summary['frames']} frames")
    click.echo(f"chunks: {c['done']} done, {c['pending']} pending, {c['failed']} failed")
    if summary.get("ocr_frames"):
        click.echo(f"on-screen text read in {summary['ocr_frames']} frames (query --text-in-frame)")
    for m in summary["models"]:
        click.echo(f"model {m['model_id']} (dim {m['dim']}): {m['frames']} frames")
    for f in summary["failed_files"]:
        click.echo(f"failed: {f['error']}")
    for f in summary["failed_chunks"]:
        click.echo(f"failed chunk: [{f['start']:.0f}-{f['end']:.0f}s] {f['error']}")
    for v in summary.get("per_video", []):
        click.echo(f"{escape_line(v['path'])}: {v['done']} done, {v['pending']} pending, {v['failed']} failed")
