"""The ``vidsearch`` command line: a thin click layer over the library.

Each ``vidsearch/cli/cmd_*.py`` module adds its commands to :data:`cli`; they are imported
here so that ``vidsearch --help`` lists them all. Errors become one-line ``ClickException``s.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import cli

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
    importlib.import_module(f"{__name__}.{_mod}")


def main() -> None:
    cli(prog_name="vidsearch")


__all__ = ["cli", "main"]
