"""An aiohttp client for the server's REST and console websocket APIs, the way the console uses them.

It keeps cookies (``steun_session``, ``steun_csrf``), fetches the CSRF cookie first (``GET /api/auth/me``),
copies it into ``X-CSRF-Token`` and sends the server's ``Origin`` on every request; each of these can be
switched off or replaced per request to test the refusals. TLS is on, certificate checks off (the test
server's certificate is self-signed; the pin is tested elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aiohttp
from yarl import URL

CSRF_COOKIE = "steun_csrf"
SESSION_COOKIE = "steun_session"
_DEFAULT = object()


@dataclasses.dataclass
class ApiResponse:
    status: int
    body: Any
    headers: Any
    text: str

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return str(code) if code is not None else None
        return None

    def set_cookies(self) -> list[str]:
        return list(self.headers.getall("Set-Cookie", ()))

    def cookie_attributes(self, name: str) -> str | None:
        """The raw ``Set-Cookie`` header that sets ``name``, or None."""
        for value in self.set_cookies():
            if value.startswith(name + "="):
                return str(value)
        return None


class ApiClient:
    def __init__(self, base_url: str, *, origin: str | None = None, local_addr: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = origin or self.base_url
        connector = aiohttp.TCPConnector(ssl=False, local_addr=(local_addr, 0) if local_addr else None)
        # unsafe=True: keep cookies for an IP-address host (127.0.0.1)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.session.close()

    def cookie(self, name: str) -> str | None:
        cookies = self.session.cookie_jar.filter_cookies(URL(self.base_url))
        morsel = cookies.get(name)
        return morsel.value if morsel is not None else None

    @property
    def csrf_token(self) -> str | None:
        return self.cookie(CSRF_COOKIE)

    async def ensure_csrf(self) -> str:
        if self.csrf_token is None:
            await self.request("GET", "/api/auth/me")
        token = self.csrf_token
        assert token is not None, "the server did not hand out a steun_csrf cookie"
        return token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _DEFAULT,
        data: bytes | None = None,
        csrf: Any = _DEFAULT,
        origin: Any = _DEFAULT,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> ApiResponse:
        """``csrf``/``origin``: default = the right value; None = leave the header out; a string = send it."""
        send_headers = dict(headers or {})
        unsafe = method.upper() in ("POST", "PUT", "PATCH", "DELETE")
        if origin is _DEFAULT:
            origin = self.origin if unsafe else None
        if origin is not None:
            send_headers["Origin"] = origin
        if csrf is _DEFAULT:
            csrf = await self.ensure_csrf() if unsafe else None
        if csrf is not None:
            send_headers["X-CSRF-Token"] = csrf
        kwargs: dict[str, Any] = {"headers": send_headers, "params": params}
        if json_body is not _DEFAULT:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return ApiResponse(status=response.status, body=body, headers=response.headers, text=text)

    async def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
        return await self.request("POST", path, json_body={} if body is None else body, **kwargs)

    async def patch(self, path: str, body: Any, **kwargs: Any) -> ApiResponse:
        return await self.request("PATCH", path, json_body=body, **kwargs)

    async def login(
        self,
        username: str,
        password: str,
        *,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> ApiResponse:
        body: dict[str, Any] = {"username": username, "password": password}
        if totp_code is not None:
            body["totp_code"] = totp_code
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        return await self.post("/api/auth/login", body)

    async def login_ok(self, username: str, password: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.login(username, password, **kwargs)
        assert response.status == 200, (response.status, response.body)
        user: dict[str, Any] = response.body["user"]
        return user

    async def websocket(
        self, path: str = "/api/ws", *, origin: Any = _DEFAULT, **kwargs: Any
    ) -> aiohttp.ClientWebSocketResponse:
        headers: dict[str, str] = {}
        if origin is _DEFAULT:
            origin = self.origin
        if origin is not None:
            headers["Origin"] = origin
        url = self.base_url.replace("https://", "wss://").replace("http://", "ws://") + path
        return await self.session.ws_connect(url, headers=headers, **kwargs)


async def signed_in_client(server: Any, username: str, password: str) -> ApiClient:
    client = ApiClient(server.url)
    await client.login_ok(username, password)
    return client


async def create_user(admin: ApiClient, username: str, role: str = "technician") -> str:
    """Create a user through the REST API as ``admin``; returns the one-time password."""
    response = await admin.post("/api/users", {"username": username, "role": role})
    assert response.status == 201, (response.status, response.body)
    password: str = response.body["password"]
    return password
