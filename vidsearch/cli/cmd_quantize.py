"""``vidsearch model quantize``: an int8 image tower, checked against the original before install."""
from __future__ import annotations

from pathlib import Path

import click

from .base import echo_json, handle_errors, json_option
from .cmd_model import model_group


def _frames(samples: tuple[Path, ...], n: int):
    if samples:
        from vidsearch.media.samples import sample_frames

        return sample_frames(samples, n)
    from vidsearch.demo.cctv import sample_frames as generated

    return generated(n)


@click.command("quantize")
@click.argument("name")
@click.option("--name", "new_name", default=None, help="Install under this name (default: NAME-int8).")
@click.option("--sample", "samples", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Images, videos or directories of them to check on (repeatable; default: generated CCTV-like stills).")
@click.option("--frames", type=click.IntRange(30, 100000), default=200, show_default=True, help="Frames in the check.")
@click.option("--prompt", "prompts", multiple=True, help="Prompt of the top-10 overlap check (repeatable; default: a built-in few).")
@click.option("--min-cosine", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Refuse below this mean cosine between fp32 and int8 embeddings.")
@click.option("--min-overlap", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Refuse below this mean top-10 overlap.")
@click.option("--force", is_flag=True, help="Replace an installed model of the same name.")
@json_option
@handle_errors
def quantize_cmd(name, new_name, samples, frames, prompts, min_cosine, min_overlap, force, as_json):
    """Write NAME-int8: NAME with an int8 image tower for CPUs, checked before install.

    The image tower is quantized with ONNX Runtime (dynamic int8). Before it is installed, both image towers embed the same frames: the mean cosine of the
    two embeddings and the overlap of the top-10 frames on a few prompts must reach the
    thresholds, or nothing is installed. The text tower is unchanged; the new model has its
    own model id (index with one or the other, not both). See docs/motion.md.
    """
    from vidsearch.models.quantize import quantize_model

    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    res = quantize_model(name, _frames(samples, frames), name=new_name, prompts=prompts or None, force=force,
                         min_cosine=min_cosine, min_overlap=min_overlap, say=say)
    if as_json:
        echo_json({"name": res.info.path.name, "model_id": res.info.model_id, "source_model": res.source.model_id,
                   "path": str(res.info.path), "image_bytes": {"fp32": res.image_bytes[0], "int8": res.image_bytes[1]},
                   "agreement": res.agreement.to_dict()})
        return
    click.echo(f"checked on {res.agreement.summary()}")
    click.echo(f"installed {res.info.model_id} in {res.info.path} (image tower {res.image_bytes[0] / 1e6:,.0f} MB -> "
               f"{res.image_bytes[1] / 1e6:,.0f} MB); use it with --model {res.info.path.name}")


model_group.add_command(quantize_cmd)
