"""``vidsearch model export``: build a model directory from open_clip and a local checkpoint file."""
from __future__ import annotations

from pathlib import Path

import click

from .base import echo_json, handle_errors, json_option
from .cmd_model import model_group


@click.command("export")
@click.option("--arch", required=True, help="open_clip architecture, e.g. ViT-B-32 (must use CLIP's BPE tokenizer).")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Local open_clip checkpoint file (.bin, .pt, .safetensors). Never downloaded.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model directory to create (default: $VIDSEARCH_HOME/models/NAME).",
)
@click.option("--name", default=None, help="Model name recorded in model.json (default: clip-<arch>, e.g. clip-vit-b-32).")
@click.option(
    "--tag",
    default=None,
    help="open_clip pretrained tag the checkpoint comes from (e.g. laion2b_s34b_b79k): "
    "takes its mean/std and QuickGELU setting from open_clip's table; nothing is downloaded.",
)
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--force", is_flag=True, help="Replace --out if it exists (only once the new export succeeded).")
@click.option(
    "--random-weights",
    is_flag=True,
    help="Plumbing/testing only: embeddings mean nothing. Builds the architecture without a checkpoint.",
)
@json_option
@handle_errors
def export_cmd(arch, checkpoint, out, name, tag, opset, force, random_weights, as_json):
    """Export an open_clip model to ONNX (image.onnx, text.onnx, model.json).

    \b
    Example:
      vidsearch model export --arch ViT-B-32 --tag laion2b_s34b_b79k \\
          --checkpoint ~/Downloads/open_clip_model.safetensors --out ./clip-vit-b-32

    Needs the export extra: pip install 'vidsearch[export]'. The directory appears only once the
    export has succeeded and the ONNX files match torch.
    """
    from vidsearch.models.openclip_export import DEFAULT_OPSET, export_open_clip

    info = export_open_clip(
        arch,
        checkpoint,
        out,
        name=name,
        tag=tag,
        opset=opset or DEFAULT_OPSET,
        force=force,
        random_weights=random_weights,
        progress=lambda msg: click.echo(msg, err=True),
    )
    if as_json:
        data = info.to_json()
        data["path"] = str(info.path)
        data["model_id"] = info.model_id
        echo_json(data)
    else:
        click.echo(f"{info.path}  {info.model_id}")
        if info.semantics == "random":
            click.echo("warning: random weights; this model's scores mean nothing (plumbing test only)", err=True)


model_group.add_command(export_cmd)
