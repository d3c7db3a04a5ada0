"""`vidsearch serve`: the evidence-review web app over an index (needs the web extra)."""
from __future__ import annotations

import secrets
from pathlib import Path

import click

from .base import cli, handle_errors, pass_ctx
from .common import providers_option


@cli.command("serve")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index directory (default: the global --index).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback requires the access token printed at start.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free port).")
@providers_option
@pass_ctx
@handle_errors
def serve_cmd(ctx, index_dir, host, port, providers):
    """Search, play, mark and keep ranges in the browser; export a case as evidence.

    Holds the model and the search matrix warm; every page asset ships with the package (works
    offline). The API under the page is described at /openapi.json.
    """
    try:
        import uvicorn

        from vidsearch.web.app import create_app, is_local
    except ImportError as e:
        raise click.ClickException(f"serve needs the web extra ({e.name} is missing): pip install 'vidsearch[web]'") from None
    index = (index_dir or ctx.index).expanduser()
    token = None if is_local(host) else secrets.token_urlsafe(24)
    app = create_app(index, token=token, providers=providers)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    _announce(server, host, port, token, index)
    try:
        server.run()
    finally:
        app.state.warm.close()


def _announce(server, host: str, port: int, token: str | None, index: Path) -> None:
    """Print the URL once the socket is bound (the real port when --port 0)."""
    original = server.startup

    async def startup(sockets=None):
        await original(sockets=sockets)
        bound = port
        for s in getattr(server, "servers", []) or []:
            for sock in getattr(s, "sockets", []) or []:
                bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}/"
        click.echo(f"serving {index} at {url}" + (f"?token={token}" if token else ""), err=False)
        if token:
            click.echo(f"this server listens on {host}, beyond this machine: every request needs the token above "
                       "(shown only now)", err=True)
        click.echo("press Ctrl-C to stop", err=True)

    server.startup = startup
