"""The technician's sign-in for command-line tools: a pinned TLS connection, the session cookie kept on disk.

``steun login`` signs in once (password, and the TOTP code when two-factor sign-in is on) and keeps the
server's session cookie in ``$STEUN_TECH_HOME/login.json`` (default ``~/.config/steun``), readable by the
technician only. Later commands (``steun connect``, ``ssh``, ``files``) reuse it until the server ends that
session, exactly as a browser keeps its cookie; ``steun logout`` ends it.

TLS: with ``--pin`` (the SPKI SHA-256 that ``steun init`` prints, b64url) the server's key must match the
pin and nothing else is trusted — the same rule the agent follows; without it the system's CA store decides.
Each run checks the pin on a fresh connection and then pins that exact certificate for every request and
the relay websocket (``aiohttp.Fingerprint``), so a swapped certificate between check and use fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import ssl
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from yarl import URL

from ..errors import SteunServerError
from ..keys import b64url, b64url_decode, spki_sha256

SESSION_COOKIE = "steun_session"
CSRF_COOKIE = "steun_csrf"
LOGIN_FILE = "login.json"
TIMEOUT = 30.0


class TechError(SteunServerError):
    """A technician command failed; the message is for the person at the terminal."""


class NotSignedIn(TechError):
    pass


class ApiRefused(TechError):
    """The server answered with an error; ``code`` is its stable code (``totp_required``, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"the server refused: {code}: {message}")
        self.status = status
        self.code = code


def tech_home() -> Path:
    configured = os.environ.get("STEUN_TECH_HOME")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "steun"


@dataclass(slots=True)
class Login:
    """What ``steun login`` keeps: the server, how to trust it, and the session cookie."""

    server: str
    username: str
    pin: str = ""  # b64url SPKI SHA-256, or "" for the system CA store
    ca_file: str = ""
    session: str = ""
    csrf: str = ""

    @property
    def origin(self) -> str:
        parts = urllib.parse.urlsplit(self.server)
        return f"{parts.scheme}://{parts.netloc}"

    def save(self, home: Path | None = None) -> Path:
        directory = home or tech_home()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / LOGIN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
        os.chmod(path, 0o600)
        return path

    @classmethod
    def load(cls, home: Path | None = None) -> Login:
        path = (home or tech_home()) / LOGIN_FILE
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError:
            raise NotSignedIn("not signed in: run 'steun login --server URL --user NAME' first") from None
        except (ValueError, TypeError) as exc:
            raise NotSignedIn(f"{path} is damaged ({exc}); sign in again") from None


def spki_of_der(der: bytes) -> bytes:
    return spki_sha256(x509.load_der_x509_certificate(der))


async def fetch_certificate(server: str, within: float = TIMEOUT) -> bytes:
    """The DER certificate the server presents now (no trust decision here)."""
    parts = urllib.parse.urlsplit(server)
    if parts.scheme != "https":
        raise TechError(f"{server}: the server URL must start with https://")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = parts.port or 443
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    except (OSError, TimeoutError) as exc:
        raise TechError(f"cannot reach {server}: {exc}") from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise TechError(f"{server} presented no certificate")
        return bytes(der)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def trust_for(login: Login) -> ssl.SSLContext | aiohttp.Fingerprint:
    """How aiohttp must check this server: the pinned certificate, or the CA store."""
    if login.pin:
        der = await fetch_certificate(login.server)
        seen = spki_of_der(der)
        if seen != b64url_decode(login.pin):
            raise TechError(
                f"the server's TLS key does not match the pin (expected {login.pin}, it presented "
                f"{b64url(seen)}). Nothing was sent. This may not be your Steun server."
            )
        return aiohttp.Fingerprint(hashlib.sha256(der).digest())
    context = ssl.create_default_context(cafile=login.ca_file or None)
    return context


class TechApi:
    """An aiohttp session signed in as the technician: REST calls and the websockets (console API, relay)."""

    def __init__(
        self, login: Login, session: aiohttp.ClientSession, trust: ssl.SSLContext | aiohttp.Fingerprint
    ):
        self.login = login
        self.http = session
        self._trust = trust

    @classmethod
    async def open(cls, login: Login) -> TechApi:
        trust = await trust_for(login)
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for an IP-address host too
        if login.session:
            jar.update_cookies({SESSION_COOKIE: login.session, CSRF_COOKIE: login.csrf}, URL(login.server))
        http = aiohttp.ClientSession(
            cookie_jar=jar,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=TIMEOUT),
            headers={"User-Agent": "steun-tech"},
        )
        return cls(login, http, trust)

    async def close(self) -> None:
        await self.http.close()

    def cookie(self, name: str) -> str:
        morsel = self.http.cookie_jar.filter_cookies(URL(self.login.server)).get(name)
        return morsel.value if morsel is not None else ""

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Origin": self.login.origin}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            if not self.cookie(CSRF_COOKIE):
                with contextlib.suppress(ApiRefused, NotSignedIn):  # signed out: 401, but the cookie is set
                    await self.request("GET", "/api/auth/me")
            headers["X-CSRF-Token"] = self.cookie(CSRF_COOKIE)
        url = self.login.server.rstrip("/") + path
        try:
            async with asyncio.timeout(TIMEOUT):
                async with self.http.request(
                    method, url, json=body, headers=headers, ssl=self._trust
                ) as reply:
                    data = await reply.json(content_type=None) if reply.content_length != 0 else None
                    status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TechError(f"cannot reach {self.login.server}: {exc}") from None
        if status == 401:
            raise NotSignedIn("the server ended this sign-in; run 'steun login' again")
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise TechError(
                f"the server refused {path}: {error.get('code', status)}: {error.get('message', '')}"
            )
        return data

    async def websocket(self, path: str, **options: Any) -> aiohttp.ClientWebSocketResponse:
        url = self.login.server.rstrip("/").replace("https://", "wss://", 1) + path
        try:
            ws: aiohttp.ClientWebSocketResponse = await self.http.ws_connect(
                url,
                headers={"Origin": self.login.origin},
                ssl=self._trust,
                autoping=True,
                heartbeat=20.0,
                compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                **options,
            )
            return ws
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise NotSignedIn("the server ended this sign-in; run 'steun login' again") from None
            raise TechError(
                f"the server refused the websocket {path.split('?')[0]}: HTTP {exc.status}"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TechError(f"cannot open {path.split('?')[0]}: {exc}") from None


async def sign_in(
    login: Login, password: str, *, totp_code: str | None = None, home: Path | None = None
) -> Login:
    """POST /api/auth/login; keep the cookies in ``login`` and on disk."""
    api = await TechApi.open(login)
    try:
        body: dict[str, Any] = {"username": login.username, "password": password}
        if totp_code:
            body["totp_code"] = totp_code
        await api.request("POST", "/api/auth/login", body)
        login.session, login.csrf = api.cookie(SESSION_COOKIE), api.cookie(CSRF_COOKIE)
        if not login.session:
            raise TechError("the server accepted the sign-in but set no session cookie")
        login.save(home)
        return login
    finally:
        await api.close()
