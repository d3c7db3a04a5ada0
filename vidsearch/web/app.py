"""The FastAPI application: error handling (one-line JSON), the access guard, static assets, routes."""
from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidsearch import __version__
from vidsearch.errors import VidsearchError, first_line
from .responses import error
from .state import NotFound, Warm

STATIC = Path(__file__).with_name("static")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
COOKIE = "vidsearch_token"


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def host_name(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` -> ``[::1]``, ``localhost:8765`` -> ``localhost``)."""
    return header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]


def create_app(index_root, *, token: str | None = None, providers: str | None = None, refresh_s: float = 5.0,
               upload_limit: int = 20 * 1024 * 1024) -> FastAPI:
    """The app over the index at ``index_root``. With ``token`` every request must carry it
    (``Authorization: Bearer``, the ``token`` query parameter once, or the cookie that sets)."""
    from . import routes_case, routes_media, routes_search, routes_tags

    app = FastAPI(title="vidsearch", version=__version__, docs_url=None, redoc_url=None, lifespan=_lifespan,
                  description="Evidence review over a vidsearch index. The same API the page uses; see docs/web.md.")
    app.state.warm = Warm(index_root, providers=providers, refresh_s=refresh_s, upload_limit=upload_limit)
    app.state.token = token
    _error_handlers(app)
    app.middleware("http")(_guard)
    for mod in (routes_search, routes_media, routes_case, routes_tags):
        app.include_router(mod.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index_page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """Remove the server's temp space on a graceful stop: uvicorn re-raises SIGTERM/SIGINT once it
    has shut down, so code after ``server.run()`` does not run then."""
    try:
        yield
    finally:
        app.state.warm.close()


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, e: NotFound):
        return error(404, first_line(e))

    @app.exception_handler(VidsearchError)
    async def user_error(request: Request, e: VidsearchError):
        return error(400, first_line(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return error(e.status_code, e.detail if isinstance(e.detail, str) else "request refused")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        errs = e.errors()
        where = ".".join(str(x) for x in errs[0].get("loc", ())[1:]) if errs else ""
        return error(422, f"invalid request: {where + ': ' if where else ''}{errs[0].get('msg', '') if errs else ''}")

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception):
        return error(500, f"internal error: {type(e).__name__}: {first_line(e)}")


async def _guard(request: Request, call_next):
    """Token check (when the server is not bound to loopback), Host check against DNS rebinding
    (when it is), and no cross-origin writes."""
    token = request.app.state.token
    set_cookie = False
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or request.cookies.get(COOKIE, "")
        if not given and request.query_params.get("token"):
            given, set_cookie = request.query_params["token"], True
        if not secrets.compare_digest(given.encode(), token.encode()):
            return error(401, "this server needs its access token: open the URL `vidsearch serve` printed, "
                              "or send Authorization: Bearer TOKEN")
    else:
        host = host_name(request.headers.get("host") or "")
        if host and not is_local(host) and host != "testserver":
            return error(403, f"host {host[:60]!r} refused: this server answers only on 127.0.0.1 / localhost")
    origin = request.headers.get("origin")
    if request.method not in ("GET", "HEAD", "OPTIONS") and origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        return error(403, "cross-origin request refused")
    try:
        response = await call_next(request)
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback page
        return error(500, f"internal error: {type(e).__name__}: {first_line(e)}")
    if set_cookie:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
