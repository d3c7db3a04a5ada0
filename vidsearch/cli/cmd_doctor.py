"""``vidsearch doctor``: check this machine (providers that really work, codecs, model, broker)."""
from __future__ import annotations

import sys

import click

from .base import cli, echo_json, handle_errors, json_option, print_table


@cli.command()
@click.option("-m", "--model", default=None, help="Model name or directory to check (default: the configured default model).")
@click.option(
    "--providers",
    type=click.Choice(["auto", "tensorrt", "cuda", "cpu"], case_sensitive=False),
    default=None,
    help="Execution provider choice to check (default: env VIDSEARCH_PROVIDERS, config key providers, else auto).",
)
@click.option(
    "--warmup", is_flag=True,
    help="Also run the model's image encoder once; with TensorRT this builds the engine into the cache.",
)
@click.option("--broker", default=None,
              help="Celery broker URL to check (default: env VIDSEARCH_BROKER_URL, else broker_url in config.json).")
@json_option
@handle_errors
def doctor(model: str | None, providers: str | None, warmup: bool, broker: str | None, as_json: bool) -> None:
    """Check versions, execution providers (by really running them), decoders, GPU, model and broker.

    Exits with status 1 when a check fails, so it can serve as a container health check.
    """
    from vidsearch.doctor import checks, collect

    report = collect(model, providers, warm=warmup, broker=broker)
    rows = checks(report)
    report["checks"] = rows
    report["ok"] = all(r["status"] != "FAIL" for r in rows)
    if as_json:
        echo_json(report)
    else:
        print_table(rows, [("status", "STATUS"), ("check", "CHECK"), ("detail", "DETAIL")])
        click.echo("")
        click.echo("all checks passed" if report["ok"] else "some checks FAILED")
    if not report["ok"]:
        sys.exit(1)
