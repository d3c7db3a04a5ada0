"""`vidsearch sql`: read-only SELECT queries on the catalog, with text_embedding() and image_embedding()."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from .base import cli, csv_safe, echo_json, handle_errors, json_option, pass_ctx, print_table
from .common import model_option, providers_option


def _cell(v, width: int = 60) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (list, tuple)):
        text = "[" + ", ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in v[:4]) + (", ...]" if len(v) > 4 else "]")
    elif isinstance(v, float):
        text = f"{v:.6g}"
    else:
        text = str(v)
    if len(text) <= width:
        return text
    head = (width - 3) // 3  # cut in the middle, keeping more of the end: paths differ in their file names
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


@cli.command("sql")
@click.argument("query")
@model_option
@providers_option
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Fetch at most this many rows.")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Output CSV.")
@click.option("--parquet", "parquet", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the rows to this Parquet file (outside the index).")
@pass_ctx
@handle_errors
def sql_cmd(ctx, query, model, providers, limit, as_json, as_csv, parquet):
    """Run read-only SELECT queries on the index catalog (DuckDB).

    Tables: videos, files, chunks, models; views: frames (video_id, path, chunk_id, pts,
    model_id, embedding) and frames_<model>; tags (video_id, path, start_s, end_s, tag, score,
    recorded_at, ...: docs/tags.md). text_embedding('...') and image_embedding('path')
    embed with the model of the frames view:

    vidsearch sql "SELECT path, pts FROM frames ORDER BY array_cosine_similarity(embedding, text_embedding('red car')) DESC LIMIT 5"

    QUERY '-' reads the SQL from stdin (vidsearch sql - < report.sql); put -- before a QUERY
    that starts with a "--" comment. Only SELECT-like statements run (WITH, FROM, DESCRIBE,
    SHOW, SUMMARIZE, EXPLAIN), reading only the index's files; save results with --csv, --json
    or --parquet FILE.
    """
    from vidsearch.errors import UserError
    from vidsearch.index.sql import run_sql, write_parquet
    from vidsearch.index.shards import IndexStore

    if query == "-":
        query = sys.stdin.read()
    if parquet is not None:
        if as_csv:
            raise UserError("--csv and --parquet: choose one")
        n = write_parquet(IndexStore(ctx.index), query, parquet, model=model, providers=providers, limit=limit)
        if as_json:
            echo_json({"parquet": str(parquet), "rows": n})
        else:
            click.echo(f"wrote {n} row{'' if n == 1 else 's'} to {parquet}")
        return
    result = run_sql(IndexStore(ctx.index), query, model=model, providers=providers, limit=limit)
    if as_json:
        echo_json(result.records())
    elif as_csv:
        _echo_csv(result)
    else:
        _echo_table(result)


def _echo_csv(result) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(result.columns)
    for row in result.rows:
        w.writerow(csv_safe([json.dumps(v) if isinstance(v, (list, tuple, dict)) else ("" if v is None else v) for v in row]))


def _echo_table(result) -> None:
    if not result.columns:
        return
    if not result.rows:
        click.echo("(no rows)")
        return
    keys = [f"c{i}" for i in range(len(result.columns))]
    rows = [{k: _cell(v) for k, v in zip(keys, r)} for r in result.rows]
    print_table(rows, list(zip(keys, result.columns)))
