"""The ``vidsearch`` command line: a thin click layer over the library.

Each ``vidsearch/cli/cmd_*.py`` module adds its commands to :data:`cli`; a command's module is
imported when it runs, all of them when they are listed (``vidsearch --help``): see
:class:`~vidsearch.cli.base.LazyGroup`. Errors become one-line ``ClickException``s.
"""
from __future__ import annotations

from .base import cli

#: the commands one module defines alone (``model`` is extended by cmd_export: every module loads)
cli.modules = {
    "classify": "cmd_classify", "demo": "cmd_demo", "doctor": "cmd_doctor", "events": "cmd_events",
    "export": "cmd_evidence", "ingest": "cmd_ingest", "query": "cmd_query", "serve": "cmd_serve",
    "sql": "cmd_sql", "status": "cmd_status", "worker": "cmd_worker",
}


def main() -> None:
    cli(prog_name="vidsearch")


__all__ = ["cli", "main"]
