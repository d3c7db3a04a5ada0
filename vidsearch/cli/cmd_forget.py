"""`vidsearch forget`: take files out of the index."""
from __future__ import annotations

import click

from vidsearch.index.shards import IndexStore
from vidsearch.ingest.forget import forget
from .base import cli, echo_json, escape_line, handle_errors, json_option, pass_ctx, plural


@cli.command("forget")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--missing", is_flag=True,
              help="The indexed files no longer on disk (under PATHS when given); not those whose directory is "
                   "missing too (an unmounted drive): name those to forget them.")
@click.option("--detached", is_flag=True,
              help="Also delete the content set aside when its file was replaced by other content (see ingest).")
@click.option("--dry-run", is_flag=True, help="Say what would leave the index; change nothing.")
@click.option("--force", is_flag=True, help="Even while chunks of these files are still queued for workers.")
@json_option
@pass_ctx
@handle_errors
def forget_cmd(ctx, paths, missing, detached, dry_run, force, as_json):
    """Take files out of the index: their frames, on-screen text and tags, for every model.

    PATHS are files or directories (every indexed file under them). A video another indexed file
    still holds (the same content elsewhere) stays. The video files, case folders and exported
    evidence are not touched. `vidsearch ingest` indexes a forgotten file again if it is scanned.
    """
    res = forget(IndexStore(ctx.index), paths, missing=missing, dry_run=dry_run, detached=detached, force=force)
    if as_json:
        echo_json(res)
        return
    verb = "would forget" if dry_run else "forgot"
    left = "would leave" if dry_run else "left"
    if paths or missing:
        click.echo(f"{verb} {plural(len(res['files']), 'file')}: {plural(len(res['videos']), 'video')} and "
                   f"{plural(res['chunks'], 'chunk')} {left} the index")
        for v in res["videos"]:
            click.echo(f"  {escape_line(v['path'])} ({plural(v['chunks'], 'chunk')})")
    if res["unreachable"]:
        click.echo(f"kept {plural(len(res['unreachable']), 'file')} whose directory is not there either (an unmounted "
                   f"drive?), e.g. {escape_line(res['unreachable'][0])}: name them to forget them", err=True)
    if detached:
        aside = res["detached"]
        click.echo(f"{'would delete' if dry_run else 'deleted'} {plural(len(aside), 'video')} set aside "
                   f"({plural(sum(d['chunks'] for d in aside), 'chunk')})")
