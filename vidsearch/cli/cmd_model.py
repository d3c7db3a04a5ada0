"""``vidsearch model``: pull (pinned downloads), import (air-gapped copies), list, default.

``model export`` (open_clip -> ONNX) lives in cmd_export.py and attaches to :data:`model_group`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import cli, echo_json, handle_errors, json_option, print_table


@cli.group("model")
def model_group():
    """Install, inspect and build model directories."""


def _mb(n) -> str:
    return "-" if n is None else f"{n / 1e6:,.0f} MB"


class _Bars:
    """One tqdm bar per downloaded file, on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bars: dict = {}

    def __call__(self, label: str, done: int, total) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = tqdm(
                total=total, initial=0, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False
            )
        bar.total = total
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _summary(info, as_json: bool, verb: str) -> None:
    from vidsearch.models.install import default_model

    is_default = default_model() == (info.path.name if info.path else info.name)
    if as_json:
        echo_json(
            {
                "name": info.path.name if info.path else info.name,
                "model_id": info.model_id,
                "dim": info.dim,
                "image_size": info.image_size,
                "path": str(info.path),
                "default": is_default,
            }
        )
        return
    click.echo(f"{verb} {info.model_id} ({info.dim}-d, {info.image_size}px) in {info.path}")
    if is_default:
        click.echo("it is the default model")


@model_group.command("pull")
@click.argument("name")
@click.option("--trust-unpinned", is_flag=True, help="Install files that have no pinned SHA-256 (their computed hashes are recorded).")
@click.option("--force", is_flag=True, help="Replace an installed model of the same name.")
@click.option("--default/--no-default", "make_default", default=None,
              help="Make it the default model (default: only when no default is set).")
@click.option("--retries", type=click.IntRange(0, 50), default=3, show_default=True,
              help="Resume an interrupted transfer this many times before giving up.")
@click.option("--keep-download", is_flag=True, help="Keep the upstream files in $VIDSEARCH_HOME/downloads.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@json_option
@handle_errors
def pull_cmd(name, trust_unpinned, force, make_default, retries, keep_download, quiet, as_json):
    """Download a pinned model, verify every file's SHA-256, convert and install it.

    \b
    Models (vidsearch model list --available):
      clip-vit-b-32               fast, English (the default)
      clip-vit-b-32-laion2b       same speed, better accuracy
      clip-vit-l-14               slower, better recall
      clip-multilingual-vit-b-32  queries in ~100 languages (needs --trust-unpinned)

    Files come from public ONNX exports (Immich's smart-search models on Hugging Face, or the
    mirror in $VIDSEARCH_HUB_URL) at a pinned revision. An interrupted transfer resumes where
    it stopped when you run the command again; a file that does not match its pin is deleted.
    """
    from vidsearch.models.install import pull

    bars = _Bars(quiet or as_json)
    try:
        info = pull(
            name, trust_unpinned=trust_unpinned, force=force, make_default=make_default,
            retries=retries, keep_download=keep_download, progress=bars,
        )
    finally:
        bars.close()
    _summary(info, as_json, "installed")
    if trust_unpinned and not as_json:
        click.echo("note: some files had no pinned sha256; their computed hashes are recorded under 'source' in model.json", err=True)


@model_group.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", default=None, help="Install under this name (default: the model's own name).")
@click.option("--force", is_flag=True, help="Replace an installed model of the same name.")
@click.option("--default/--no-default", "make_default", default=None,
              help="Make it the default model (default: only when no default is set).")
@json_option
@handle_errors
def import_cmd(path, name, force, make_default, as_json):
    """Install a model from a directory or archive, without network (air-gapped sites).

    PATH is a copy of an installed model (a directory with image.onnx, text.onnx and
    model.json, or a .tar.gz/.tgz/.tar/.zip of one; its hashes are verified) or an
    Immich-style export (visual/model.onnx, textual/model.onnx, config.json...), which is
    converted.

    \b
    On a connected machine (PATH column of `vidsearch model list --json`):
      tar czf clip.tgz -C ~/.local/share/vidsearch/models clip-vit-b-32
    On the air-gapped one:
      vidsearch model import clip.tgz
    """
    from vidsearch.models.install import import_model

    info = import_model(path, name=name, force=force, make_default=make_default)
    _summary(info, as_json, "imported")


@model_group.command("list")
@click.option("--available", is_flag=True, help="List the models `model pull` knows instead of the installed ones.")
@json_option
@handle_errors
def list_cmd(available, as_json):
    """Installed models: name, dimension, model id (name@sha), size; * marks the default."""
    from vidsearch.models.install import available_models, list_models

    if available:
        rows = available_models()
        if as_json:
            echo_json(rows)
            return
        for r in rows:
            r["pin"] = "sha256" if r["pinned"] else "UNPINNED"
            r["size"] = _mb(r["download_bytes"])
            r["inst"] = "yes" if r["installed"] else ""
        print_table(rows, [("name", "NAME"), ("size", "DOWNLOAD"), ("pin", "PIN"), ("inst", "INSTALLED"), ("description", "DESCRIPTION")])
        return
    rows = list_models()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no model installed: run `vidsearch model pull clip-vit-b-32` (or `vidsearch model import DIR`)")
        return
    for r in rows:
        r["mark"] = "*" if r["default"] else ""
        r["size"] = _mb(r["size_bytes"])
        r["pin"] = {True: "pinned", False: "unpinned", None: "-"}[r["pinned"]]
    print_table(
        rows,
        [("mark", ""), ("name", "NAME"), ("dim", "DIM"), ("model_id", "MODEL ID"), ("tokenizer", "TOKENIZER"),
         ("size", "SIZE"), ("pin", "SOURCE PIN")],
    )


@model_group.command("default")
@click.argument("name", required=False)
@json_option
@handle_errors
def default_cmd(name, as_json):
    """Show the default model, or make NAME (an installed model) the default."""
    from vidsearch.models.install import default_model, set_default

    if name:
        info = set_default(name)
        if as_json:
            echo_json({"default": name, "model_id": info.model_id})
        else:
            click.echo(f"default model: {name} ({info.model_id})")
        return
    current = default_model()
    if as_json:
        echo_json({"default": current})
    elif current:
        click.echo(current)
    else:
        raise click.ClickException("no default model: run `vidsearch model pull clip-vit-b-32`")


@model_group.command("set-default", hidden=True)
@click.argument("name")
@json_option
@click.pass_context
def set_default_cmd(ctx, name, as_json):
    """Same as `vidsearch model default NAME`."""
    ctx.invoke(default_cmd, name=name, as_json=as_json)
