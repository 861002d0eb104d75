"""`digihuman serve`: the web page and the versioned HTTP/WebSocket API (`/v1`) over web sessions.

Security: it binds 127.0.0.1 by default; any other address needs a token, checked on every request and
WebSocket (`Authorization: Bearer`, `?token=`, or the cookie the page gets from `/?token=`). Without a token,
only loopback Host names are served (no DNS rebinding). Cross-origin requests are refused (no CORS, and a
foreign `Origin` on a WebSocket or a POST is rejected). Uploads and texts are size-limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from digihuman import __version__
from digihuman.config import Settings
from digihuman.errors import UserError
from digihuman.frontend.runner import Stopped
from digihuman.server.sessions import SessionManager, UnknownSession

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
WS_MAX_BYTES = 4 * 1024 * 1024  # beyond this uvicorn closes the socket; below it the app answers `error`
COOKIE = "digihuman_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to serve other machines without a token."""
    if not is_loopback(host) and not token:
        raise UserError(
            f"--host {host} makes the server reachable from other machines: give --token SECRET "
            "(or server.token in the config)"
        )


def check_port(host: str, port: int) -> None:
    """Fail with one line, before anything starts, when the address cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host"
        ) from None


class Guard:
    """Token, Host and Origin checks on every HTTP request and WebSocket, before any route runs."""

    def __init__(self, app: ASGIApp, token: str, api: FastAPI | None = None) -> None:
        self.app = app
        self.token = token
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401 if problem[0] == 401 else 4403})
        else:
            await JSONResponse({"error": problem[1]}, problem[0])(scope, receive, send)

    def problem(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        origin = headers.get("origin")
        if origin is not None:  # "null" too: a sandboxed frame or a file:// page is another origin
            unsafe = scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD", "OPTIONS")
            if unsafe and urlsplit(origin).netloc != host:
                return 403, f"requests from {origin} are not allowed (cross-origin)"
        if not self.token:
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in LOOPBACK_NAMES:
                return 403, f"host {host!r} is not served without a token: start the server with --token"
            return None
        if self._token_ok(scope, headers):
            return None
        return 401, "missing or wrong token: send Authorization: Bearer TOKEN or open /?token=TOKEN"

    def _token_ok(self, scope: Scope, headers: dict[str, str]) -> bool:
        given: list[str] = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given += query.get("token", [])
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given.append(value)
        return any(hmac.compare_digest(g.encode(), self.token.encode()) for g in given)


def create_app(settings: Settings, token: str = "") -> Guard:
    """The ASGI app: the FastAPI routes (`.api`) behind the guard."""
    manager = SessionManager(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        try:
            yield
        finally:
            await manager.aclose()

    app = FastAPI(
        title="digihuman",
        version=__version__,
        description="A local digital human: a web page and a versioned HTTP/WebSocket API.",
        docs_url=None,  # FastAPI's docs page loads Swagger from a CDN; ours is local (static/docs.html)
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.manager = manager

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"{where}: {first.get('msg')}" if where else first.get("msg")}, 422)

    from digihuman.server.routes import register

    register(app, manager)

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        if token and request.query_params.get("token"):
            # The page's own scripts, API calls and WebSocket then carry it without putting it in URLs.
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return FileResponse(STATIC / "docs.html")

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def session_socket(websocket: WebSocket, session_id: str) -> None:
        from digihuman.server.connection import Connection

        try:
            session = manager.get(session_id)
        except UnknownSession as exc:
            await websocket.accept()
            await websocket.send_json({"type": "error", "message": str(exc), "fatal": True})
            await websocket.close(code=4404)
            return
        await websocket.accept()
        await Connection(websocket, session).serve()

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, token, api=app)


def serve(
    settings: Settings, host: str, port: int, token: str, *, tls: tuple[str | None, str | None] | None = None
) -> None:
    """Run the server until Ctrl-C; refuses a non-loopback host without a token. With `tls` (certificate
    and key files) it serves HTTPS, which browsers need for the microphone and camera off localhost."""
    import uvicorn

    check_bind(host, token)
    if tls is not None:
        for flag, path in zip(("--tls-cert", "--tls-key"), tls, strict=True):
            if not path or not Path(path).is_file():
                raise UserError(
                    f"{flag} {path or '(missing)'}: give both --tls-cert and --tls-key as PEM files"
                )
    check_port(host, port)
    app = create_app(settings, token)
    url_host = f"[{host}]" if ":" in host else host
    hint = f"?token={token}" if token else ""
    scheme = "https" if tls else "http"
    print(f"digihuman: serving {scheme}://{url_host}:{port}/{hint} (Ctrl-C stops)", flush=True)
    if tls is None and not is_loopback(host):
        print("digihuman: note: browsers allow the mic and camera only over HTTPS: use --tls-cert/--tls-key")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=WS_MAX_BYTES,
        log_level="warning",
        lifespan="on",
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM (the sessions close), then re-raises the signal:
    # a signal is how a server is stopped, not an error.
    with contextlib.suppress(Stopped, KeyboardInterrupt):
        asyncio.run(uvicorn.Server(config).serve())
