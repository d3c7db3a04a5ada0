"""The ``vidsearch`` command line: a thin click layer over the library.

Each ``vidsearch/cli/cmd_*.py`` module adds its commands to :data:`cli`; a command's module is
imported when it runs, all of them when they are listed (``vidsearch --help``): see
:class:`~vidsearch.cli.base.LazyGroup`. Errors become one-line ``ClickException``s.
"""
from __future__ import annotations

import os
import sys

from . import base
from .base import cli

#: the commands one module defines alone (``model`` is extended by cmd_export: every module loads)
cli.modules = {
    "classify": "cmd_classify", "demo": "cmd_demo", "doctor": "cmd_doctor", "events": "cmd_events",
    "export": "cmd_evidence", "forget": "cmd_forget", "ingest": "cmd_ingest", "query": "cmd_query", "serve": "cmd_serve",
    "sql": "cmd_sql", "status": "cmd_status", "worker": "cmd_worker",
}


def main() -> None:
    """The console script. A command that set ``base.FAST_EXIT`` (``query``: its output written, no
    file left open) ends with ``os._exit`` once its output is flushed: the interpreter's teardown
    (module cleanup, finalisers, the executor's thread joins: ~20-30 ms of a 0.3 s query) is skipped;
    the kernel frees the memory and mappings either way."""
    try:
        cli(prog_name="vidsearch")
    except SystemExit as e:
        if e.code in (0, None) and base.FAST_EXIT["ok"]:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except (OSError, ValueError):
                raise e from None  # e.g. a closed pipe: the usual exit reports it
            os._exit(0)
        raise


__all__ = ["cli", "main"]
