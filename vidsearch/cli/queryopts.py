"""Query refinement options shared by `query` and `events`: negative prompts, example images, recorded time."""
from __future__ import annotations

from pathlib import Path

import click


def refine_options(fn):
    fn = click.option(
        "--before", default=None, metavar="TIME",
        help="Only frames recorded before TIME (ISO 8601, UTC unless it has an offset; needs the file's creation time).",
    )(fn)
    fn = click.option(
        "--after", default=None, metavar="TIME",
        help="Only frames recorded at or after TIME (file creation time + frame time); files without one are left out.",
    )(fn)
    fn = click.option(
        "--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Example image to search by (repeatable; averaged with any text prompts).",
    )(fn)
    fn = click.option(
        "--not", "negatives", multiple=True, metavar="TEXT",
        help="Negative prompt (repeatable): frames closer to it than to the query lose their score.",
    )(fn)
    return fn


def skipped_note(n: int) -> None:
    if n:
        click.echo(f"note: {n} video(s) left out by --after/--before: their files carry no creation time", err=True)


def damaged_note(index) -> None:
    """One line on stderr when damaged shards were left out of the frames a query scored."""
    damaged = getattr(index, "damaged", None)
    if damaged:
        first = sorted(damaged)[0]
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        click.echo(f"warning: damaged shard {first}{more} left out ({index.skipped_frames} frames skipped); "
                   "`vidsearch status --verify` marks it for re-indexing by the next ingest", err=True)
