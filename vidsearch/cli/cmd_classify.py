"""`vidsearch classify`: zero-shot labels for every indexed frame, as a label timeline per video."""
from __future__ import annotations

import csv
import sys

import click

from .base import cli, csv_safe, display_path, echo_json, format_ts, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option, semantics_warning


@cli.command("classify")
@click.option("-l", "--labels", "labels", multiple=True, required=True,
              help='Comma-separated labels (repeatable), e.g. --labels "delivery,person,car,empty street".')
@click.option("-t", "--template", "templates", multiple=True,
              help='Prompt template with {} for the label (repeatable; default: 8 built-in templates, ensembled).')
@model_option
@providers_option
@click.option("--video", "video_glob", default=None, help="Only videos whose path matches this glob.")
@click.option("--after", default=None, metavar="TIME", help="Only frames recorded at or after TIME (ISO 8601, UTC by default).")
@click.option("--before", default=None, metavar="TIME", help="Only frames recorded before TIME.")
@click.option("--smooth", "smooth_s", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Smooth label probabilities over this many seconds before choosing.")
@click.option("--min-prob", type=click.FloatRange(0, 1), default=None,
              help='Frames whose best label has a lower probability are "uncertain".')
@click.option("--min-segment", "min_segment_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Merge label runs shorter than this many seconds into the run before them.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Output CSV: one row per segment.")
@pass_ctx
@handle_errors
def classify_cmd(ctx, labels, templates, model, providers, video_glob, after, before, smooth_s, min_prob, min_segment_s,
                 as_json, as_csv):
    """Zero-shot classification (as in the CLIP paper): a timeline of labels per video.

    Each label is embedded through several prompt templates whose embeddings are averaged;
    each frame gets softmax(100 * cosine) over the labels, and runs of frames with the same
    most probable label become segments:
    vidsearch classify --labels "delivery,person,car,empty street" --min-prob 0.5
    """
    from vidsearch.index.shards import IndexStore
    from vidsearch.models.encoder import Encoder
    from vidsearch.query.models import pick_model
    from vidsearch.retro.classify import DEFAULT_TEMPLATES, classify_frames, parse_labels

    names = parse_labels(labels)
    store = IndexStore(ctx.index)
    info = pick_model(store, model)
    semantics_warning(info)
    result = classify_frames(
        store, Encoder(info, providers=providers), names, templates=list(templates) or DEFAULT_TEMPLATES,
        video_glob=video_glob, after=after, before=before, smooth_s=smooth_s, min_prob=min_prob,
        min_segment_s=min_segment_s,
    )
    if result.unknown_labels:
        click.echo(f"warning: model {info.name} cannot embed {', '.join(result.unknown_labels)}: "
                   "those labels only win where nothing else fits", err=True)
    if as_json:
        echo_json(result.to_dict())
        return
    rows = [
        {"path": v.path or "", "video_id": v.video_id, "label": s.label, "start": round(s.start, 3), "end": round(s.end, 3),
         "duration": round(s.duration, 3), "frames": s.frames, "mean_prob": round(s.mean_prob, 4)}
        for v in result.videos for s in v.segments
    ]
    if as_csv:
        w = csv.DictWriter(sys.stdout, fieldnames=["path", "video_id", "label", "start", "end", "duration", "frames", "mean_prob"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows(csv_safe(r) for r in rows)
        return
    if not rows:
        click.echo("no frames to classify")
        return
    table = [
        {"video": display_path(r["path"]), "label": r["label"], "start": format_ts(r["start"]), "end": format_ts(r["end"]),
         "dur": f"{r['duration']:.1f}s", "p": f"{r['mean_prob']:.2f}"}
        for r in rows
    ]
    print_table(table, [("video", "video"), ("label", "label"), ("start", "start"), ("end", "end"), ("dur", "duration"),
                        ("p", "mean p")])
    totals = result.totals()
    click.echo("\n" + ", ".join(f"{k}: {format_ts(v)}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])))
