"""`vidsearch ingest`: index an archive (in-process by default)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vidsearch.core.plan import DEFAULT_CHUNK_S, Sampling
from vidsearch.core.regions import MAX_GRID
from vidsearch.index.shards import IndexStore
from vidsearch.ingest.local import LocalBackend
from vidsearch.ingest.pipeline import ingest
from vidsearch.ingest.plan import IngestOptions
from .base import cli, echo_json, escape_line, handle_errors, json_option, pass_ctx, plural
from .common import gating_note, load_encoder, model_option, providers_option, semantics_warning


def make_progress(quiet: bool):
    """A tqdm bar over seconds of video (silent with --quiet or when stderr is not a terminal)."""
    state = {"bar": None, "plan": None, "done": 0.0}

    def on_plan(plan) -> None:
        if quiet or not sys.stderr.isatty() or not plan.todo:
            return
        from tqdm import tqdm

        state["plan"] = plan
        state["bar"] = tqdm(total=round(plan.seconds_todo), unit="s", unit_scale=True, desc="indexing video", file=sys.stderr)

    def progress(spec, marker) -> None:
        bar = state["bar"]
        if bar is not None:
            # with --ocr an image chunk and the OCR chunk of the same range count half each
            state["done"] += state["plan"].video_seconds(spec)
            bar.update(round(state["done"]) - bar.n)
            if marker is None:
                bar.write(f"failed: {spec.path} [{spec.start:.0f}-{spec.end:.0f}s]", file=sys.stderr)

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return on_plan, progress, close


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@providers_option
@click.option("--fps", type=click.FloatRange(0, 120, min_open=True), default=1.0, show_default=True, help="Frames sampled per second of video.")
@click.option("--keyframes", is_flag=True, help="Sample keyframes only (much faster; spacing follows the encoder's GOP).")
@click.option("--regions", type=click.IntRange(1, MAX_GRID), default=1, show_default=True, metavar="N",
              help="Also embed an N x N grid of overlapping tiles of each frame (2 or 3: small subjects in "
                   "wide views; N*N+1 embeddings per frame; see docs/regions.md). 1: the whole frame only.")
@click.option("--chunk", "chunk_s", type=click.FloatRange(min=1), default=DEFAULT_CHUNK_S, show_default=True, help="Chunk length in seconds (the unit of work).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Frames per inference batch.")
@click.option("--ocr", is_flag=True, help="Also read on-screen text (every 2 s and at scene cuts) for "
              "`query --text-in-frame`; needs the ocr extra (see docs/ocr.md).")
@click.option("--tags", "tags", is_flag=True, help="Also tag every frame with the index's tag vocabulary "
              "(the built-in one until `vidsearch tags build --vocab` changes it) for `vidsearch tags`; see docs/tags.md.")
@click.option("--motion", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
              help="auto: a sampled frame whose picture has not changed since the last embedded one reuses its "
              "embedding (every frame still gets its row); off: embed every sampled frame. Recorded per chunk; "
              "chunks already done keep theirs. See docs/motion.md.")
@click.option("--backend", type=click.Choice(["local", "celery"]), default="local", show_default=True,
              help="local: embed in this process. celery: send chunks to workers (see docs/distributed.md).")
@click.option("--broker", default=None, help="Celery broker URL (env VIDSEARCH_BROKER_URL).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="With --backend celery: wait for the workers.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@json_option
@pass_ctx
@handle_errors
def ingest_cmd(ctx, paths, model, providers, fps, keyframes, regions, chunk_s, batch_size, ocr, tags, motion, backend, broker, wait, quiet, as_json):
    """Index the videos under PATHS (directories are walked recursively).

    A walk picks up video file names, in any case: .mp4 .mov .mkv .avi .ts .mts .m2ts .mpg .vob
    .mxf .wmv .webm .flv .3gp .dav, bare .h264/.264/.hevc/.265 and the like (hidden entries are
    skipped); a file named in PATHS is tried whatever its name.

    Re-running on the same archive with the same model and settings does nothing; new files
    are picked up incrementally. Bad files are reported and recorded; the rest goes on. A file
    whose frames do not cover its length (damaged or truncated) is indexed as far as it decodes
    and reported as partial, with the missing stretches.

    \b
    Exit status: 0 every file indexed whole (or queued for workers);
    1 an error, or nothing could be indexed; 3 some file failed or is partial.
    """
    sampling = Sampling("keyframes", regions=regions) if keyframes else Sampling("fps", fps, regions)
    extra = ("ocr",) * ocr + ("tags",) * tags
    options = IngestOptions(chunk_s=chunk_s, sampling=sampling, batch_size=batch_size, channels=extra, motion=motion)
    if ocr and backend == "local":  # with celery the workers need the extra, not the submitter
        from vidsearch.ocr.channel import require_ocr

        require_ocr()
    store = IndexStore(ctx.index)
    if backend == "celery":
        from vidsearch.ingest.celery import CeleryBackend  # the submitter never imports onnxruntime

        from vidsearch.models.contract import load_model_info

        info = load_model_info(model)
        runner = CeleryBackend(broker=broker, wait=wait, batch_size=batch_size, quiet=quiet or as_json)
    else:
        encoder = load_encoder(model, providers)
        info = encoder.info
        runner = LocalBackend(encoder, batch_size=batch_size)
    semantics_warning(info)
    if tags:
        from vidsearch.retro.tags import choose_vocabulary, prepare_ingest

        prepare_ingest(store, info.model_id, choose_vocabulary(store))
    on_plan, progress, close = make_progress(quiet or as_json)
    try:
        report = ingest(paths, store, info, runner, options, progress=progress, on_plan=on_plan)
    finally:
        close()
    _summarise(report, as_json=as_json, ocr=ocr, tags=tags)
    if report.exit_code:
        sys.exit(report.exit_code)


def _embedded(report) -> str:
    """`` (137 through the image encoder, 11.4 %: motion gating)`` when some frames reuse an embedding."""
    note = gating_note(report.frames, report.frames_embedded, report.region_rows, report.region_rows_embedded)
    return f" ({note})" if note else ""


def _summarise(report, *, as_json: bool, ocr: bool, tags: bool) -> None:
    """The ingest summary: JSON, or lines on stdout; failures and partial files on stderr."""
    if as_json:
        echo_json(report.to_dict())
    else:
        rate = report.seconds_indexed / report.wall_s if report.wall_s else 0.0
        click.echo(
            f"{report.videos} videos ({report.files_seen} files), {report.chunks_done} chunks indexed, "
            f"{report.chunks_skipped} already done, {report.chunks_failed} failed; {report.frames} frames{_embedded(report)}; "
            f"{report.seconds_indexed:.0f}s of video in {report.wall_s:.1f}s ({rate:.1f}x realtime)"
        )
        if ocr:
            click.echo(f"on-screen text read in {report.channel_frames.get('ocr_frames', 0)} frames")
        if tags:
            click.echo(f"tags scored in {report.channel_frames.get('tag_frames', 0)} frames; see `vidsearch tags`")
        if report.pending:
            click.echo(f"{report.pending} chunks queued for workers; see `vidsearch status`")
        if report.providers:
            click.echo(f"model {report.model_id} on {', '.join(report.providers)}")
        click.echo(f"files: {report.files_indexed} indexed, {report.files_partial} partial, {report.files_failed} failed")
        for f in report.failures:
            where = f" [{f.start:.0f}-{f.end:.0f}s]" if f.start is not None else ""
            click.echo(f"failed: {f.error}{where}", err=True)
    for r in report.replaced:
        click.echo(f"replaced: {escape_line(r['path'])}: its content changed since it was indexed; the old "
                   f"content ({r['video_id'][:12]}, {plural(r['chunks'], 'chunk')}) is set aside: out of every search, "
                   "back if an ingest finds it again (`vidsearch forget --detached` deletes it)", err=True)
    for p in report.partial_files:  # also with --json: stdout stays JSON
        gaps = ", ".join(f"{a:.1f}-{b:.1f}s" for a, b in p["missing"])
        click.echo(f"partial: {escape_line(p['path'])}: no frames for {gaps} ({p['missing_s']:.1f}s; damaged or truncated video)", err=True)
