"""Routes in one place: the route-spec registry, app state keys, guards, JSON helpers and middlewares.

Agreed with the fleet module (``steun_server/fleet/``), so both sides build against fixed names:

* ``steun_server.fleet.routes`` may export
  - ``ROUTES``: an iterable of :class:`RouteSpec` (a :class:`RouteTable` is one), registered by
    ``create_app`` next to the server's own routes (``/api/devices``, ``/api/groups``,
    ``/api/enrollment-tokens``, ``/agent/ws``);
  - ``COMMANDS``: an iterable of :class:`steun_server.wsapi.CommandSpec` for the console websocket
    (``devices/list``, ``devices/subscribe``, …); ``/api/ws`` itself is served by ``steun_server.wsapi``;
  - ``setup(app)``: called once from ``create_app`` before routes are added (state, ``cleanup_ctx``).
* Handlers read state through the typed keys below (``request.app[DB]``, ``request.app[AUDIT]``, …) and the
  signed-in user through :func:`current_user`. Permission, CSRF and Origin checks are done here, from the
  spec, before a handler runs: a handler never checks them itself.
* ``/agent/...`` routes refuse any request that carries an ``Origin`` header (agents are not browsers).
"""

from __future__ import annotations

import dataclasses
import hmac
import http.cookies
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from aiohttp import hdrs, web
from steun_protocol.codec import check_bounds
from steun_protocol.errors import RemoteProtocolError

from .auth.roles import Role, has_permission
from .config import ServerConfig
from .errors import ApiError, bad_request, forbidden, unauthorized
from .storage import Database

if TYPE_CHECKING:
    from .audit import AuditSink
    from .auth.service import AuthService, Principal
    from .keys import ServerKeys
    from .wsapi import CommandRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OriginPolicy = Literal["same", "none", "handler"]

SESSION_COOKIE = "steun_session"
CSRF_COOKIE = "steun_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# -- typed application state -------------------------------------------------------------------------------

CONFIG = web.AppKey("steun_config", ServerConfig)
DB = web.AppKey("steun_db", Database)
AUDIT: web.AppKey[AuditSink] = web.AppKey("steun_audit")
KEYS: web.AppKey[ServerKeys] = web.AppKey("steun_keys")
AUTH: web.AppKey[AuthService] = web.AppKey("steun_auth")
ROUTES: web.AppKey[RouteTable] = web.AppKey("steun_routes")
WS_COMMANDS: web.AppKey[CommandRegistry] = web.AppKey("steun_ws_commands")
USER: web.RequestKey[Principal] = web.RequestKey("steun_user")


# -- route specs -------------------------------------------------------------------------------------------


class AppService:
    """Base of the per-application services (fleet, sessions, diagnostics): typed access to shared state.

    The state is read on each access, not copied, because ``create_app``'s first ``cleanup_ctx`` fills it in
    after the services are constructed.
    """

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def config(self) -> ServerConfig:
        return self._app[CONFIG]

    @property
    def db(self) -> Database:
        return self._app[DB]

    @property
    def keys(self) -> ServerKeys:
        return self._app[KEYS]

    @property
    def audit(self) -> AuditSink:
        return self._app[AUDIT]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    """One HTTP route, declared once: the router, the guard and the OpenAPI document all read it."""

    method: str
    path: str
    handler: Handler
    #: Lowest role allowed; ``None`` only together with ``public=True``.
    permission: Role | None = None
    public: bool = False
    summary: str = ""
    description: str = ""
    #: msgspec types of the JSON body, the query string (a Struct) and the success response.
    request: Any = None
    query: Any = None
    response: Any = None
    status: int = 200
    #: Error statuses worth listing in the OpenAPI document besides the usual 400/401/403.
    errors: tuple[int, ...] = ()
    websocket: bool = False
    #: ``same``: unsafe methods and websocket upgrades need our Origin; ``none``: any Origin is refused;
    #: ``handler``: the handler decides (the relay: its console side needs our Origin, its agent side none).
    origin: OriginPolicy | None = None
    tags: tuple[str, ...] = ()
    include_in_schema: bool = True

    def __post_init__(self) -> None:
        if self.public == (self.permission is not None):
            raise ValueError(f"{self.method} {self.path}: declare exactly one of permission= or public=True")
        if self.method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ValueError(f"{self.path}: unsupported method {self.method}")
        if self.websocket and self.method != "GET":
            raise ValueError(f"{self.path}: websocket routes are GET")

    @property
    def origin_policy(self) -> OriginPolicy:
        if self.origin is not None:
            return self.origin
        return "none" if self.path.startswith("/agent/") else "same"


class RouteTable:
    """An ordered collection of :class:`RouteSpec` with decorators, like ``web.RouteTableDef``."""

    def __init__(self, specs: Iterable[RouteSpec] = ()) -> None:
        self._specs: list[RouteSpec] = list(specs)

    def __iter__(self) -> Iterator[RouteSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def add(self, spec: RouteSpec) -> None:
        for existing in self._specs:
            if existing.method == spec.method and existing.path == spec.path:
                raise ValueError(f"route {spec.method} {spec.path} declared twice")
        self._specs.append(spec)

    def extend(self, specs: Iterable[RouteSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(RouteSpec(method=method, path=path, handler=handler, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)


def register_routes(app: web.Application, specs: Iterable[RouteSpec]) -> None:
    """Add routes to the router, each wrapped in the guard its spec asks for."""
    table = app[ROUTES]
    for spec in specs:
        table.add(spec)
        app.router.add_route(spec.method, spec.path, _guarded(spec), name=_route_name(spec))


def _route_name(spec: RouteSpec) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in spec.path).strip("_")
    return f"{spec.method.lower()}_{cleaned or 'root'}"


def _guarded(spec: RouteSpec) -> Handler:
    async def guard(request: web.Request) -> web.StreamResponse:
        unsafe = request.method in UNSAFE_METHODS
        if spec.origin_policy == "none":
            if hdrs.ORIGIN in request.headers:
                raise forbidden("browsers may not open this endpoint", code="origin_refused")
        elif spec.origin_policy == "same" and (unsafe or spec.websocket):
            check_origin(request)
        if unsafe:
            check_csrf(request)
        if not spec.public:
            assert spec.permission is not None
            principal = await request.app[AUTH].authenticate(request)
            if not has_permission(principal.role, spec.permission):
                raise forbidden(f"this needs the {spec.permission} role")
            request[USER] = principal
        return await spec.handler(request)

    guard.__name__ = getattr(spec.handler, "__name__", "handler")
    guard.__doc__ = spec.handler.__doc__
    return guard


def check_origin(request: web.Request) -> None:
    """State-changing requests and websocket upgrades must come from the server's own origin."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        raise forbidden("the Origin header is missing", code="origin_refused")
    if origin.lower().rstrip("/") not in request.app[CONFIG].allowed_origins:
        raise forbidden("requests from this origin are refused", code="origin_refused")


def check_csrf(request: web.Request) -> None:
    """Double submit: the ``X-CSRF-Token`` header must equal the ``steun_csrf`` cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise forbidden("missing or wrong CSRF token", code="csrf_failed")


def current_user(request: web.Request) -> Principal:
    """The signed-in user of a guarded route (raises 401 on a public route without a session)."""
    try:
        return request[USER]
    except KeyError:
        raise unauthorized() from None


# -- JSON in and out ---------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def json_response(value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(value), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    headers: dict[str, str] = {}
    retry_after = error.extra.get("retry_after")
    if isinstance(retry_after, int | float):
        headers[hdrs.RETRY_AFTER] = str(max(1, int(-(-retry_after // 1))))
    return json_response(error.body(), status=error.status, headers=headers)


async def read_json(request: web.Request, type: type[T]) -> T:
    """Decode a bounded JSON body into ``type``; any mismatch is a ``400 invalid_request``."""
    if request.content_type != "application/json":
        raise bad_request("send the body as application/json")
    body = await request.read()  # client_max_size bounds this (413)
    try:
        check_bounds(body, max_size=request.app[CONFIG].client_max_size)
    except RemoteProtocolError as exc:
        raise bad_request(exc.message) from None
    try:
        return msgspec.json.decode(body, type=type, strict=True)
    except msgspec.ValidationError as exc:
        raise bad_request(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise bad_request("the body is not valid JSON") from None


def read_query(request: web.Request, type: type[T]) -> T:
    """Convert the query string into a Struct (numbers parsed from text); unknown keys are refused."""
    try:
        return msgspec.convert(dict(request.query), type=type, strict=False)
    except msgspec.ValidationError as exc:
        raise bad_request(f"query: {exc}") from None


# -- cookies -----------------------------------------------------------------------------------------------


def set_session_cookie(response: web.StreamResponse, token: str, *, max_age: float | None = None) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=True,
        samesite="Strict",
        path="/",
        max_age=None if max_age is None else int(max_age),
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def set_csrf_cookie(response: web.StreamResponse, token: str | None = None) -> str:
    token = token or secrets.token_urlsafe(32)
    # readable by the console's JS on purpose: it copies it into the X-CSRF-Token header
    response.set_cookie(CSRF_COOKIE, token, httponly=False, secure=True, samesite="Strict", path="/")
    return token


# -- middlewares and signals -------------------------------------------------------------------------------

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "throttled",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {"code", "message"}}``; nothing internal leaks."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is too large"
        response = error_response(ApiError(exc.status, code, message))
        if exc.status == 405:
            allow = exc.headers.get(hdrs.ALLOW)
            if allow:
                response.headers[hdrs.ALLOW] = allow
        return response
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "internal server error"))


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every response, and the CSRF cookie for a client that has none yet."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    config = request.app[CONFIG]
    if config.tls and config.public_url.startswith("https://"):
        # only with a real public name: HSTS on "localhost" would capture every local dev server
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith("/api/"):
        headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
    if CSRF_COOKIE not in request.cookies:
        # this signal runs after aiohttp has turned response.cookies into headers: add the header directly
        prefix = CSRF_COOKIE + "="
        if not any(v.startswith(prefix) for v in headers.getall(hdrs.SET_COOKIE, ())):
            morsel: http.cookies.Morsel[str] = http.cookies.Morsel()
            token = secrets.token_urlsafe(32)
            morsel.set(CSRF_COOKIE, token, token)
            morsel["path"] = "/"
            morsel["secure"] = True
            morsel["samesite"] = "Strict"
            headers.add(hdrs.SET_COOKIE, morsel.OutputString())
