"""`vidsearch export`: an evidence directory (thumbnails, clips, HTML report, hashed manifest) for a result set."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import cli, echo_json, handle_errors, json_option, pass_ctx
from .common import model_option, providers_option


@cli.command("export")
@click.argument("results")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New (or empty) directory to write the evidence into.")
@model_option
@providers_option
@click.option("--no-clips", is_flag=True, help="Thumbnails, report and manifest only.")
@click.option("--reencode", is_flag=True, help="Re-encode clips (frame-exact start) instead of stream copy.")
@click.option("--pad", "pad_s", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Seconds of context before and after each clip.")
@click.option("--allow-mismatch", is_flag=True,
              help="Export even when a source file or the model's files changed since indexing "
                   "(marked unverified / not matching in the manifest).")
@json_option
@pass_ctx
@handle_errors
def evidence_cmd(ctx, results, out_dir, model, providers, no_clips, reencode, pad_s, allow_mismatch, as_json):
    """Export evidence for RESULTS (a file written by `vidsearch query --json`, or - for stdin).

    Writes thumbnails at peak times, a clip of each range (stream copy from the keyframe before
    the start; re-encoded where a copy is impossible), report.html with a score-over-time plot per
    video, scores.csv, and manifest.json (source SHA-256s re-checked now, model id and file
    hashes, prompts, scores, every file's SHA-256) whose own hash goes to manifest.sha256:
    vidsearch query "red car" --json > hits.json && vidsearch export hits.json --out evidence/
    """
    from vidsearch.errors import VidsearchError
    from vidsearch.evidence.export import export_evidence, score_series
    from vidsearch.evidence.model import export_context
    from vidsearch.evidence.results import check_in_index, load_results
    from vidsearch.index.shards import IndexStore

    data = load_results(results, stdin=sys.stdin)
    store = IndexStore(ctx.index)
    context = export_context(store, data["model_id"], model, allow_mismatch=allow_mismatch)
    check_in_index(data["ranges"], context.videos)
    series = None
    if context.info is not None:
        try:
            from vidsearch.models.encoder import Encoder

            encoder = Encoder(context.info, providers=providers)
            series = score_series(store, encoder, data, {r["video_id"] for r in data["ranges"]})
        except VidsearchError as e:
            click.echo(f"note: no score plots ({e})", err=True)

    tty = sys.stderr.isatty() and not as_json

    def progress(i, n, r):
        if tty:
            click.echo(f"\r{i}/{n} ranges", nl=False, err=True)

    report = export_evidence(
        data, out_dir, series=series, model=context.model, videos=context.videos, index=str(store.root), clips=not no_clips,
        copy=not reencode, pad_s=pad_s, allow_mismatch=allow_mismatch, model_warnings=context.warnings, progress=progress,
    )
    if tty:
        click.echo("", err=True)
    for w in report.warnings:
        click.echo(f"WARNING: {w}", err=True)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(f"{report.ranges} ranges: {report.thumbnails} thumbnails, {report.clips} clips -> {report.out_dir}")
    click.echo(f"report:   {report.out_dir / 'report.html'}")
    click.echo(f"manifest: {report.out_dir / 'manifest.json'}")
    click.echo(f"manifest sha256: {report.manifest_sha256}")
