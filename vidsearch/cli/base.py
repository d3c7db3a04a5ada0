"""The click group, shared options and error handling used by every command module."""
from __future__ import annotations

import functools
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable

import click

from vidsearch import __version__
from vidsearch.errors import first_line, storage_error, VidsearchError
from vidsearch.core.ranges import format_ts  # noqa: F401 - re-exported for the command modules
from vidsearch.settings import Settings, use


class Context:
    def __init__(self, index: Path, verbose: int, settings: Settings):
        self.index = index
        self.verbose = verbose
        #: this command's settings, built once from the environment and config.json
        self.settings = settings


#: set by a command whose process may end without tearing the interpreter down (see :func:`vidsearch.cli.main`)
FAST_EXIT = {"ok": False}


def cli_settings() -> Settings:
    """The settings of the command being run: loaded once per invocation (kept on the root context)."""
    meta = click.get_current_context().find_root().meta
    if "vidsearch.settings" not in meta:
        meta["vidsearch.settings"] = Settings.load()
    return meta["vidsearch.settings"]


def setting_default(field: str) -> Callable[[], Any]:
    """An option's default: its ``VIDSEARCH_*`` variable as :func:`cli_settings` read it, else None
    (a config.json value is applied below the CLI, as before: option > variable > config > default)."""

    def default() -> Any:
        settings = cli_settings()
        return getattr(settings, field) if settings.sources.get(field, "").startswith("VIDSEARCH_") else None

    return default


class LazyGroup(click.Group):
    """The root group: a command's module is imported when that command runs (``vidsearch query``
    does not pay for ingest, serve or model management); listing them (``--help``) imports all."""

    #: command name -> its module under ``vidsearch.cli`` (a name not here: every module is imported)
    modules: dict[str, str] = {}

    def load_all(self) -> None:
        import importlib
        import pkgutil

        here = str(Path(__file__).parent)  # this package's directory (importing the package would be a cycle)
        for m in sorted(m.name for m in pkgutil.iter_modules([here]) if m.name.startswith("cmd_")):
            importlib.import_module(f"vidsearch.cli.{m}")

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            import importlib

            if cmd_name in self.modules:
                importlib.import_module(f"vidsearch.cli.{self.modules[cmd_name]}")
            if cmd_name not in self.commands:
                self.load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vidsearch")
@click.option(
    "--index",
    type=click.Path(file_okay=False, path_type=Path),
    default=setting_default("index"),
    help="Index directory (default: $VIDSEARCH_HOME/index; env VIDSEARCH_INDEX).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, index: Path | None, verbose: int) -> None:
    """Index video archives with a CLIP model and find when things appear, as ranked time ranges."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings = cli_settings()
    ctx.with_resource(use(settings))  # lower layers' settings.current() is this object
    ctx.obj = Context(index=(index or settings.index_dir).expanduser(), verbose=verbose, settings=settings)


pass_ctx = click.make_pass_decorator(Context)


def handle_errors(fn: Callable) -> Callable:
    """Turn library errors into one-line ``ClickException``s; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VidsearchError as e:
            raise click.ClickException(first_line(e)) from None
        except OSError as e:  # a read-only index, a full disk, a missing directory
            fault = storage_error(e)
            if fault is not None:
                raise click.ClickException(first_line(fault)) from None
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None
        except Exception as e:  # DuckDB's errors for a full or read-only disk are no OSError
            fault = storage_error(e)
            if fault is None:
                raise
            raise click.ClickException(first_line(fault)) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted: everything written so far is kept; run the same command again to continue.", err=True)
            sys.exit(130)

    return wrapper


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Output JSON.")(fn)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def display_path(path: str | None) -> str:
    """A path as short as it can be said: relative to the working directory when inside it."""
    if not path:
        return ""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_line(text: Any) -> str:
    """``text`` with control characters escaped (a newline as ``\\n``), so a file name that holds
    one cannot split an output line of a table, a CSV row or a status line."""
    text = str(text)
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text) if _CONTROL.search(text) else text


def csv_safe(row: Any) -> Any:
    """A CSV row (a dict or a sequence) with control characters of its text cells escaped."""
    if isinstance(row, dict):
        return {k: escape_line(v) if isinstance(v, str) else v for k, v in row.items()}
    return [escape_line(v) if isinstance(v, str) else v for v in row]


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """A plain aligned text table: ``columns`` is [(key, header), ...]."""
    if not rows:
        return
    cells = [[escape_line(r.get(k, "")) for k, _ in columns] for r in rows]
    headers = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def plural(n: int, noun: str) -> str:
    """``1 chunk``, ``3 chunks``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
