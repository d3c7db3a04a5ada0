"""Options and helpers shared by several commands."""
from __future__ import annotations

import click

from vidsearch.models.contract import ModelInfo
from .base import setting_default


def model_option(fn):
    return click.option(
        "-m", "--model", default=setting_default("model"),
        help="Model name (installed) or model directory (default: the configured default model).",
    )(fn)


def providers_option(fn):
    return click.option(
        "--providers", default=setting_default("providers"),
        type=click.Choice(["auto", "tensorrt", "cuda", "cpu"]),
        help="ONNX Runtime execution providers (default auto: TensorRT, then CUDA, then CPU).",
    )(fn)


def load_encoder(model, providers=None):
    from vidsearch.models.encoder import Encoder

    return Encoder.load(model, providers=providers)


def semantics_warning(info: ModelInfo) -> None:
    """Never present random weights (or the colours-only demo model) as real search."""
    if info.semantics == "random":
        click.echo(f"warning: model {info.name} has random weights; its scores mean nothing (plumbing test only)", err=True)
    elif info.semantics == "colours":
        click.echo(f"note: {info.name} is the demo model; it understands only colour words, it is not CLIP", err=True)


def gating_note(frames: int, embedded: int | None, rows: int = 0, rows_embedded: int = 0) -> str:
    """``137 through the image encoder, 11.4 %: motion gating`` when some of ``frames`` reuse an
    embedding (docs/motion.md); with regions (``rows``: crops), the share of crops:
    ``152 through the image encoder, 301 of 1,800 region crops, 16.7%: motion gating``. Empty otherwise."""
    if rows and rows_embedded < rows:
        return (f"{embedded} through the image encoder, {rows_embedded:,} of {rows:,} region crops, "
                f"{rows_embedded / rows:.1%}: motion gating")
    if not frames or embedded is None or embedded >= frames:
        return ""
    return f"{embedded} through the image encoder, {embedded / frames:.1%}: motion gating"
