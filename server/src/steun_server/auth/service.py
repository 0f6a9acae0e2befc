"""Signing in and staying signed in: login (password, TOTP, recovery code, throttling) and web sessions.

The session token is 32 random bytes in the ``steun_session`` cookie; the database holds only its SHA-256.
A session ends after ``session_idle_timeout`` without requests or ``session_absolute_timeout`` after login,
whichever comes first. See docs/design/0002-sessions-and-csrf.md.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from .. import audit as events
from ..audit import AuditSink
from ..config import ServerConfig
from ..errors import ApiError, unauthorized
from ..storage import Database
from ..storage.tables import users, web_sessions
from . import users as user_queries
from .passwords import configure_from, needs_rehash, verify_password
from .roles import Role
from .throttle import Throttle
from .totp import hash_token, match_code

SESSION_COOKIE = "steun_session"
#: last_seen_at is written at most this often per session (a request does not always mean a write)
TOUCH_INTERVAL = 60.0
MAX_USERNAME_INPUT = 256


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The user behind a request, as the session lookup found them."""

    user_id: int
    username: str
    display_name: str
    role: Role
    totp_enabled: bool
    session_hash: str
    session_expires_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "username": self.username,
            "display_name": self.display_name,
            "role": str(self.role),
            "totp_enabled": self.totp_enabled,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class LoginResult:
    principal: Principal
    token: str


def client_address(request: web.Request) -> str:
    return (request.remote or "unknown")[:64]


class AuthService:
    def __init__(
        self,
        config: ServerConfig,
        db: Database,
        audit: AuditSink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.db = db
        self.audit = audit
        self._clock = clock
        configure_from(config)
        self.account_throttle = Throttle(
            free=config.throttle_free_failures, base=config.throttle_base_delay, cap=config.throttle_max_delay
        )
        self.address_throttle = Throttle(
            free=config.throttle_address_free_failures,
            base=config.throttle_base_delay,
            cap=config.throttle_max_delay,
        )

    def now(self) -> float:
        return self._clock()

    # -- sessions ------------------------------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> Principal:
        token = request.cookies.get(SESSION_COOKIE)
        if not token or len(token) > 128:
            raise unauthorized()
        principal = await self.lookup_session(hash_token(token))
        if principal is None:
            raise unauthorized("the session has ended; sign in again", code="session_expired")
        return principal

    async def lookup_session(self, token_hash: str) -> Principal | None:
        now = self._clock()
        query = (
            sa.select(web_sessions, users)
            .join(users, users.c.id == web_sessions.c.user_id)
            .where(web_sessions.c.token_hash == token_hash)
        )
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        idle_limit = row.last_seen_at + self.config.session_idle_timeout
        if row.disabled or now >= row.expires_at or now >= idle_limit:
            async with self.db.begin() as conn:
                await conn.execute(web_sessions.delete().where(web_sessions.c.token_hash == token_hash))
            return None
        if now - row.last_seen_at > TOUCH_INTERVAL:
            async with self.db.begin() as conn:
                await conn.execute(
                    web_sessions.update()
                    .where(web_sessions.c.token_hash == token_hash)
                    .values(last_seen_at=now)
                )
        return Principal(
            user_id=int(row.user_id),
            username=row.username,
            display_name=row.display_name,
            role=Role(row.role),
            totp_enabled=row.totp_secret is not None,
            session_hash=token_hash,
            session_expires_at=float(row.expires_at),
        )

    async def session_valid(self, principal: Principal) -> bool:
        return await self.lookup_session(principal.session_hash) is not None

    async def create_session(self, user_id: int, *, source: str, user_agent: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        async with self.db.begin() as conn:
            await conn.execute(
                web_sessions.insert().values(
                    token_hash=hash_token(token),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + self.config.session_absolute_timeout,
                    source_address=source[:64],
                    user_agent=user_agent[:256],
                )
            )
        return token

    async def end_session(self, token_hash: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(web_sessions.delete().where(web_sessions.c.token_hash == token_hash))

    async def end_user_sessions(self, user_id: int, *, keep: str | None = None) -> None:
        query = web_sessions.delete().where(web_sessions.c.user_id == user_id)
        if keep is not None:
            query = query.where(web_sessions.c.token_hash != keep)
        async with self.db.begin() as conn:
            await conn.execute(query)

    async def purge_expired_sessions(self) -> int:
        now = self._clock()
        async with self.db.begin() as conn:
            result = await conn.execute(
                web_sessions.delete().where(
                    sa.or_(
                        web_sessions.c.expires_at <= now,
                        web_sessions.c.last_seen_at <= now - self.config.session_idle_timeout,
                    )
                )
            )
        return int(result.rowcount or 0)

    # -- login ---------------------------------------------------------------------------------------------

    def check_throttle(self, username: str, source: str) -> None:
        wait = max(
            self.account_throttle.retry_after(_account_key(username)),
            self.address_throttle.retry_after(_address_key(source)),
        )
        if wait > 0:
            raise ApiError(
                429,
                "throttled",
                "too many failed attempts; wait before trying again",
                retry_after=round(wait, 3),
            )

    async def login(
        self,
        *,
        username: str,
        password: str,
        totp_code: str | None,
        recovery_code: str | None,
        source: str,
        user_agent: str,
    ) -> LoginResult:
        username = username.strip().lower()[:MAX_USERNAME_INPUT]
        self.check_throttle(username, source)
        async with self.db.connect() as conn:
            row = await user_queries.get_row_by_username(conn, username)
        ok = await verify_password(row.password_hash if row is not None else None, password)
        if row is None or not ok or row.disabled:
            await self.record_failure(username, source, "password")
            raise unauthorized("wrong username or password", code="invalid_credentials")
        user_id = int(row.id)
        second_factor: str | None = None
        if row.totp_secret is not None:
            if totp_code:
                step = match_code(row.totp_secret, totp_code, self._clock(), row.totp_last_step)
                claimed = False
                if step is not None:
                    async with self.db.begin() as conn:
                        claimed = await user_queries.claim_totp_step(conn, user_id, step)
                if not claimed:
                    await self.record_failure(username, source, "totp")
                    raise unauthorized(
                        "the authenticator code is wrong or was used already", code="invalid_credentials"
                    )
                second_factor = "totp"
            elif recovery_code:
                async with self.db.begin() as conn:
                    used = await user_queries.use_recovery_code(conn, user_id, recovery_code)
                if not used:
                    await self.record_failure(username, source, "recovery_code")
                    raise unauthorized(
                        "the recovery code is wrong or was used already", code="invalid_credentials"
                    )
                second_factor = "recovery_code"
                await self.audit.emit(events.AUTH_RECOVERY_CODE_USED, actor=username, source=source)
            else:
                raise unauthorized("enter the code from your authenticator app", code="totp_required")
        self.account_throttle.success(_account_key(username))
        self.address_throttle.success(_address_key(source))
        if needs_rehash(row.password_hash):
            # the configured cost changed since this hash was made: re-hash while we hold the password
            async with self.db.begin() as conn:
                await user_queries.set_password(conn, user_id, password, check=False)
        token = await self.create_session(user_id, source=source, user_agent=user_agent)
        await self.audit.emit(
            events.AUTH_LOGIN, actor=username, source=source, data={"second_factor": second_factor}
        )
        principal = await self.lookup_session(hash_token(token))
        assert principal is not None
        return LoginResult(principal=principal, token=token)

    async def record_failure(self, username: str, source: str, reason: str) -> None:
        delay = max(
            self.account_throttle.failure(_account_key(username)),
            self.address_throttle.failure(_address_key(source)),
        )
        await self.audit.emit(
            events.AUTH_LOGIN_FAILED,
            actor=username[:128],
            source=source,
            data={"reason": reason, "delay": round(delay, 3)},
        )


def _account_key(username: str) -> str:
    return "user:" + username


def _address_key(source: str) -> str:
    return "addr:" + source
