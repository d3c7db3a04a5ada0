"""`vidsearch worker`: run a Celery embedding worker on this machine (see docs/distributed.md)."""
from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from vidsearch.errors import UserError
from .base import cli, handle_errors, pass_ctx, setting_default


@cli.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--broker", default=None, help="Celery broker URL (env VIDSEARCH_BROKER_URL).")
@click.option("-Q", "--queues", default="embed", show_default=True, help="Queues to consume (comma-separated).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (one per GPU; on CPU one process already uses every core).")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True,
              help="Celery pool (prefork: a crashed chunk takes down only its child process).")
@click.option("-m", "--model", default=setting_default("model"),
              help="Model name or directory to serve (default: whichever installed model a task asks for).")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
@handle_errors
def worker_cmd(ctx, broker, queues, concurrency, pool, model, loglevel, celery_args):
    """Consume chunks from the broker and write shards into the shared index.

    The index directory is `--index` / VIDSEARCH_INDEX when given (this node's path to the
    shared directory), else the path each task was submitted with. Extra arguments after
    `--` go to `celery worker` unchanged. Runs until stopped (Ctrl-C finishes the current chunk).
    """
    from vidsearch.ingest.celery import broker_url

    env = dict(os.environ)
    env["VIDSEARCH_BROKER_URL"] = broker_url(broker)
    if model:
        env["VIDSEARCH_MODEL"] = model
    parent = click.get_current_context().parent
    if parent is not None and (parent.get_parameter_source("index") == ParameterSource.COMMANDLINE
                               or ctx.settings.index is not None):
        env["VIDSEARCH_INDEX"] = str(ctx.index.absolute())
    if concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker",
        "-Q", queues, "--concurrency", str(concurrency), "--pool", pool, "--loglevel", loglevel,
        "--hostname", f"vidsearch{os.getpid()}@%h",
        # no worker-to-worker chatter: vidsearch uses none of it, and it logs tracebacks after a broker restart
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        *celery_args,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)
