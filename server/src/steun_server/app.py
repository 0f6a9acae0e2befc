"""The aiohttp application: ``create_app(config)`` builds it, ``serve(config)`` runs it on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import msgspec
from aiohttp import web

from . import __version__
from .audit import AuditLog, run_head_signer
from .auth.roles import Role
from .auth.routes import routes as auth_routes
from .auth.service import AuthService
from .config import ServerConfig
from .keys import ServerKeys, load_keys, server_ssl_context, set_tls_read_buffer
from .openapi import build_openapi
from .storage import Database
from .web import (
    AUDIT,
    AUTH,
    CONFIG,
    DB,
    KEYS,
    ROUTES,
    WS_COMMANDS,
    RouteSpec,
    RouteTable,
    error_middleware,
    json_response,
    on_response_prepare,
    read_query,
    register_routes,
)
from .wsapi import ROUTES as WS_ROUTES
from .wsapi import CommandRegistry

log = logging.getLogger(__name__)

SESSION_PURGE_INTERVAL = 600.0
FLEET_MODULE = "steun_server.fleet.routes"
#: Features that build on the fleet, hooked up the same way (``setup``, ``ROUTES``, ``COMMANDS``).
DIAGNOSTICS_MODULE = "steun_server.diagnostics"
SESSIONS_MODULE = "steun_server.sessions.routes"

core = RouteTable()


# -- core routes -------------------------------------------------------------------------------------------


class Health(msgspec.Struct, kw_only=True):
    status: str
    version: str


@core.get("/api/health", public=True, response=Health, summary="Liveness and version", tags=("server",))
async def health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok", "version": __version__})


@core.get(
    "/api/openapi.json",
    public=True,
    summary="This document: OpenAPI 3.1, generated from the route table",
    tags=("server",),
)
async def openapi_document(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    table: RouteTable = request.app[ROUTES]
    document = build_openapi(
        table, title="Steun", version=__version__, server_url=config.effective_public_url
    )
    return json_response(document)


class AuditQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    after: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class AuditRecordOut(msgspec.Struct, kw_only=True):
    seq: int
    time: float
    event: str
    actor: str | None
    source: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct, kw_only=True):
    records: list[AuditRecordOut]
    #: pass as ``after`` for the next page (null when this page was the last)
    next_after: int | None


@core.get(
    "/api/audit",
    permission=Role.ADMIN,
    query=AuditQuery,
    response=AuditPage,
    summary="Audit records in chain order, paged by seq",
    tags=("audit",),
)
async def audit_records(request: web.Request) -> web.StreamResponse:
    query = read_query(request, AuditQuery)
    audit = request.app[AUDIT]
    assert isinstance(audit, AuditLog)
    records = await audit.records(after=query.after, limit=query.limit)
    next_after = records[-1].seq if len(records) == query.limit else None
    return json_response({"records": [r.as_json() for r in records], "next_after": next_after})


# -- the static console ------------------------------------------------------------------------------------


def console_dir() -> Path | None:
    try:
        import steun_console
    except ImportError:  # pragma: no cover - a workspace dependency
        return None
    static_dir = getattr(steun_console, "static_dir", None)
    if static_dir is None:
        return None
    path = Path(static_dir())
    return path if (path / "index.html").is_file() else None


_NOT_BUILT = "The Steun console is not built. Build it (make console) and restart the server.\n"


async def console_index(request: web.Request) -> web.StreamResponse:
    root = await asyncio.to_thread(console_dir)
    if root is None:
        return web.Response(text=_NOT_BUILT, status=503, content_type="text/plain")
    return web.FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})


def _asset_path(name: str) -> Path | None:
    root = console_dir()
    if root is None:
        return None
    assets = (root / "assets").resolve()
    try:
        target = (assets / name).resolve()
        target.relative_to(assets)
    except (ValueError, OSError):
        return None
    return target if target.is_file() else None


async def console_asset(request: web.Request) -> web.StreamResponse:
    target = await asyncio.to_thread(_asset_path, request.match_info["path"])
    if target is None:
        raise web.HTTPNotFound()
    # built assets carry a content hash in their name: they never change under the same URL
    return web.FileResponse(target, headers={"Cache-Control": "public, max-age=31536000, immutable"})


STATIC_ROUTES = [
    RouteSpec(method="GET", path="/", handler=console_index, public=True, include_in_schema=False),
    RouteSpec(
        method="GET", path="/assets/{path:.+}", handler=console_asset, public=True, include_in_schema=False
    ),
]


# -- resources ---------------------------------------------------------------------------------------------


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if KEYS not in app:
        app[KEYS] = await asyncio.to_thread(load_keys, config)
    db = await Database.open(config.effective_database_url)
    try:
        await db.migrate()
        app[DB] = db
        audit = AuditLog(db, app[KEYS])
        app[AUDIT] = audit
        app[AUTH] = AuthService(config, db, audit)
        tasks = [
            asyncio.create_task(
                run_head_signer(audit, config.audit_sign_interval), name="steun-audit-signer"
            ),
            asyncio.create_task(_purge_sessions(app[AUTH]), name="steun-session-purge"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await audit.sign_head()
        except Exception:
            log.exception("could not sign the audit head at shutdown")
    finally:
        await db.close()


async def _purge_sessions(auth: AuthService) -> None:
    while True:
        try:
            await auth.purge_expired_sessions()
        except Exception:
            log.exception("purging expired sessions failed")
        await asyncio.sleep(SESSION_PURGE_INTERVAL)


def _fleet_module() -> ModuleType | None:
    try:
        return importlib.import_module(FLEET_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in ("steun_server.fleet", FLEET_MODULE):
            return None
        raise


def create_app(
    config: ServerConfig, *, keys: ServerKeys | None = None, extra_routes: Iterable[RouteSpec] = ()
) -> web.Application:
    """Build the application without I/O: keys load and the database opens (and migrates) on start-up,
    in the first ``cleanup_ctx``, so ``app[KEYS]``, ``app[DB]``, ``app[AUDIT]`` and ``app[AUTH]`` exist
    for every later ``cleanup_ctx`` (the fleet's included) and every handler."""
    app = web.Application(client_max_size=config.client_max_size, middlewares=[error_middleware])
    app[CONFIG] = config
    if keys is not None:
        app[KEYS] = keys
    app[ROUTES] = RouteTable()
    app[WS_COMMANDS] = CommandRegistry()
    app.cleanup_ctx.append(_storage_ctx)
    app.on_response_prepare.append(on_response_prepare)
    register_routes(app, core)
    register_routes(app, auth_routes)
    register_routes(app, WS_ROUTES)
    fleet = _fleet_module()
    if fleet is not None:
        setup = getattr(fleet, "setup", None)
        if setup is not None:
            setup(app)
        register_routes(app, getattr(fleet, "ROUTES", ()))
        for command in getattr(fleet, "COMMANDS", ()):
            app[WS_COMMANDS].register(command)
        diagnostics = importlib.import_module(DIAGNOSTICS_MODULE)
        diagnostics.setup(app)
        register_routes(app, diagnostics.ROUTES)
        for command in diagnostics.COMMANDS:
            app[WS_COMMANDS].register(command)
        sessions = importlib.import_module(SESSIONS_MODULE)
        sessions.setup(app)
        register_routes(app, sessions.ROUTES)
        for command in sessions.COMMANDS:
            app[WS_COMMANDS].register(command)
    register_routes(app, extra_routes)
    register_routes(app, STATIC_ROUTES)
    return app


# -- running it --------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class RunningApp:
    """A started server. ``config.listen_port`` is the port actually bound (useful with port 0)."""

    app: web.Application
    runner: web.AppRunner
    config: ServerConfig
    ssl_context: ssl.SSLContext | None

    @property
    def url(self) -> str:
        return self.config.effective_public_url

    @property
    def port(self) -> int:
        return self.config.listen_port

    async def stop(self) -> None:
        await self.runner.cleanup()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024, dualstack_ipv6=False)
    sock.setblocking(False)
    return sock


async def serve(config: ServerConfig) -> RunningApp:
    """Start the server on ``config.listen_host:listen_port`` (0: any free port) and return at once."""
    ssl_context: ssl.SSLContext | None = None
    if config.tls:
        set_tls_read_buffer(config.tls_read_buffer)
        ssl_context = await asyncio.to_thread(server_ssl_context, config)
    sock = bind_socket(config.listen_host, config.listen_port)
    try:
        port = int(sock.getsockname()[1])
        if port != config.listen_port:
            config = dataclasses.replace(config, listen_port=port)
        app = create_app(config)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    try:
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    log.info("Steun %s listening on %s", __version__, config.effective_public_url)
    return RunningApp(app=app, runner=runner, config=config, ssl_context=ssl_context)


async def run_forever(config: ServerConfig) -> None:
    """``steun server``: serve until SIGINT or SIGTERM."""
    import signal

    running = await serve(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()
