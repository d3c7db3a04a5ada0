"""`vidsearch status`: what the index holds, what is pending, what failed."""
from __future__ import annotations

import click

from vidsearch.index.shards import IndexStore
from vidsearch.ingest.status import index_status
from vidsearch.ingest.leases import running_chunks, running_lines
from .base import cli, echo_json, escape_line, handle_errors, json_option, pass_ctx
from .common import gating_note


@cli.command("status")
@click.option("--videos", "per_video", is_flag=True, help="Also list chunks done / pending / failed / partial per video.")
@click.option("--rebuild", is_flag=True,
              help="Re-read every chunk marker under shards/ (e.g. after copying shards in or deleting the "
                   "catalog); by default only the chunks not yet done are looked at again.")
@click.option("--verify", is_flag=True,
              help="Check every shard against the size, row count and SHA-256 its marker recorded; a damaged "
                   "shard is set aside and its chunk marked for re-indexing by the next ingest.")
@json_option
@pass_ctx
@handle_errors
def status_cmd(ctx, per_video, rebuild, verify, as_json):
    """Summarise the index: videos, hours, frames, chunks pending / done / failed, failures."""
    store = IndexStore(ctx.index)
    summary = index_status(store, rebuild=rebuild, verify=verify)
    if not per_video and not as_json:
        summary.pop("per_video")
    if per_video:
        summary["running"] = running_chunks(store.root)  # distributed ingest: which worker holds which chunk
    if as_json:
        echo_json(summary)
        return
    if summary.get("not_synced"):
        click.echo(f"warning: the catalog could not be updated from the shards ({summary['not_synced']})", err=True)
    c = summary["chunks"]
    click.echo(f"index: {summary['index']}")
    click.echo(f"{summary['videos']} videos, {summary['hours']:.2f} hours, {summary['frames']} frames")
    partial = f", {c['partial']} partial (frames missing)" if c.get("partial") else ""
    click.echo(f"chunks: {c['done']} done, {c['pending']} pending, {c['failed']} failed{partial}")
    if summary.get("ocr_frames"):
        click.echo(f"on-screen text read in {summary['ocr_frames']} frames (query --text-in-frame)")
    if summary.get("tag_frames"):
        click.echo(f"tags scored in {summary['tag_frames']} frames (vidsearch tags)")
    for m in summary["models"]:
        click.echo(f"model {m['model_id']} (dim {m['dim']}): {m['frames']} frames{gated_note(m)}")
    if summary.get("detached"):
        d = summary["detached"]
        click.echo(f"set aside: {d['videos']} videos ({d['chunks']} chunks) whose files now hold other content; "
                   "back if an ingest finds them again, `vidsearch forget --detached` deletes them")
    for f in summary["failed_files"]:
        click.echo(f"failed: {f['error']}")
    for f in summary["failed_chunks"]:
        click.echo(f"failed chunk: [{f['start']:.0f}-{f['end']:.0f}s] {f['error']}")
    if "verified" in summary:
        v = summary["verified"]
        click.echo(f"verified {v['shards']} shards: {len(v['damaged'])} damaged"
                   + (", marked for re-indexing: run the same ingest again" if v["damaged"] else ""))
    for f in summary["partial_chunks"]:
        click.echo(f"partial chunk: {partial_line(f)}")
    for v in summary.get("per_video", []):
        part = f", {v['partial']} partial ({v['missing_s']:.1f}s missing)" if v.get("partial") else ""
        click.echo(f"{escape_line(v['path'])}: {v['done']} done, {v['pending']} pending, {v['failed']} failed{part}")
    for line in running_lines(summary.get("running", [])):
        click.echo(line)


def gated_note(m: dict) -> str:
    """``, 137 through the image encoder, 11.4 %: motion gating`` when some frames reuse an embedding."""
    note = gating_note(m["frames"], m.get("embedded"))
    return f", {note}" if note else ""


def partial_line(f: dict) -> str:
    """``PATH [0-20s]: 9.0s covered, frames missing 9.0-20.0s`` for a partial chunk."""
    gaps = ", ".join(f"{a:.1f}-{b:.1f}s" for a, b in f["missing"])
    return (f"{escape_line(f['path'])} [{f['start']:.0f}-{f['end']:.0f}s]: {f['covered_s']:.1f}s covered, "
            f"{f['missing_s']:.1f}s missing ({gaps})")
