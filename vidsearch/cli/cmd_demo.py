"""`vidsearch demo`: a small synthetic archive and the colours-only demo model."""
from __future__ import annotations

from pathlib import Path

import click

from vidsearch.settings import models_dir, read_config, write_config
from .base import cli, handle_errors


@cli.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("vidsearch-demo"), show_default=True,
              help="Where to write the demo archive.")
@handle_errors
def demo_cmd(out):
    """Write a demo archive (coloured scenes at known times) and install the demo model.

    The demo model understands only colour words (red, green, blue, yellow, orange, ...): it
    lets you try the whole pipeline offline. It is not CLIP; get a real model with
    `vidsearch model pull` / `model import` / `model export`.
    """
    from vidsearch.demo.models import colour_model, install_model
    from vidsearch.demo.synth import DEMO_ARCHIVE, demo_creation_time, make_demo_archive

    files = make_demo_archive(out / "archive")
    info = install_model(colour_model, "demo-colours", models_dir())
    if not read_config().get("default_model"):
        write_config(default_model=info.name)
    click.echo(f"wrote {len(files)} videos under {out / 'archive'} and installed model {info.model_id}")
    for rel, (duration, scenes) in sorted(DEMO_ARCHIVE.items()):
        desc = ", ".join(f"{c} {s:.0f}-{e:.0f}s" for s, e, c in scenes)
        click.echo(f"  {rel} ({duration:.0f}s, recorded from {demo_creation_time(rel)}): {desc}")
    click.echo("next:")
    click.echo(f"  vidsearch ingest {out / 'archive'} --model demo-colours")
    click.echo('  vidsearch query "red" --model demo-colours')
    click.echo('  vidsearch query "red" --after 2026-11-02T08:30:00Z     # by recorded time')
    click.echo('  vidsearch events "red"                               # first seen, dwell time')
