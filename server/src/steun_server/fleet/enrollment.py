"""Enrollment tokens: made by an admin (REST or ``steun token create``), redeemed once by an agent."""

from __future__ import annotations

import secrets
import shlex
import time

from steun_protocol.auth import TOKEN_SECRET_SIZE, EnrollmentToken

from ..audit import ENROLLMENT_TOKEN_CREATED, AuditSink
from ..config import ServerConfig
from ..errors import SteunServerError
from ..keys import ServerKeys
from ..storage import Database
from . import store

MIN_TTL = 60.0
MAX_TTL = 7 * 86400.0
DEFAULT_TTL = 3600.0


class EnrollmentError(SteunServerError):
    """A token cannot be made as asked; ``code``: ``not_found`` or ``invalid_request``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def create_enrollment_token(
    db: Database,
    keys: ServerKeys,
    *,
    group: str = "default",
    ttl: float = DEFAULT_TTL,
    created_by: int | None = None,
    audit: AuditSink | None = None,
    actor: str | None = None,
    now: float | None = None,
) -> tuple[EnrollmentToken, float]:
    """Make a single-use token for ``group`` valid for ``ttl`` seconds; returns it and its expiry time.

    Only the secret's SHA-256 is stored. The token string also carries the TLS pin and the org key, so the
    agent can check the server before it sends anything.
    """
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise EnrollmentError(
            "invalid_request", f"ttl must be between {MIN_TTL:.0f} and {MAX_TTL:.0f} seconds"
        )
    if len(keys.spki_sha256) != 32:
        raise EnrollmentError(
            "invalid_request",
            "the server has no TLS certificate to pin; configure tls_cert before enrolling agents",
        )
    stored = await store.find_group(db, group)
    if stored is None:
        raise EnrollmentError("not_found", f"there is no device group {group!r}")
    now = time.time() if now is None else now
    token = EnrollmentToken(secrets.token_bytes(TOKEN_SECRET_SIZE), keys.spki_sha256, keys.org_public_key)
    expires_at = now + ttl
    await store.insert_enrollment_token(
        db,
        secret_hash=token.secret_hash,
        group=stored,
        created_at=now,
        expires_at=expires_at,
        created_by=created_by,
    )
    if audit is not None:
        await audit.emit(
            ENROLLMENT_TOKEN_CREATED,
            actor=actor,
            data={"group": stored, "expires_at": expires_at, "token_hash_prefix": token.secret_hash[:12]},
        )
    return token, expires_at


def enrollment_command(config: ServerConfig, token: EnrollmentToken) -> str:
    """The command line an admin pastes on the machine to enroll."""
    return shlex.join(
        ["steun-agent", "enroll", "--server", config.effective_public_url, "--token", str(token)]
    )
