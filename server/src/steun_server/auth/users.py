"""Queries on users and recovery codes (SQLAlchemy Core); the only module that writes those tables."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import ApiError, bad_request, conflict, not_found
from ..storage.tables import recovery_codes, users
from .passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, generate_password, hash_password
from .roles import Role
from .totp import hash_token, normalise_recovery_code

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MAX_USERS_LISTED = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    totp_enabled: bool
    disabled: bool
    created_at: float

    def public(self) -> dict[str, Any]:
        """The ``user`` object of the REST API (contract: id, username, display_name, role, totp_enabled)."""
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": str(self.role),
            "totp_enabled": self.totp_enabled,
            "disabled": self.disabled,
        }


def to_user(row: Any) -> User:
    return User(
        id=int(row.id),
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        totp_enabled=row.totp_secret is not None,
        disabled=bool(row.disabled),
        created_at=float(row.created_at),
    )


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise bad_request(
            "a username is 1-64 characters: lower-case letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return username


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise bad_request(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")


async def create_user(
    conn: AsyncConnection,
    username: str,
    *,
    role: Role,
    display_name: str = "",
    password: str | None = None,
) -> tuple[User, str]:
    """Insert a user; returns it and its password (a fresh random one unless given)."""
    check_username(username)
    if password is None:
        password = generate_password()
    else:
        check_password(password)
    now = time.time()
    password_hash = await hash_password(password)
    if await get_row_by_username(conn, username) is not None:
        raise conflict(f"the username {username!r} is taken", code="username_taken")
    try:
        result = await conn.execute(
            users.insert()
            .values(
                username=username,
                display_name=display_name or username,
                role=str(role),
                password_hash=password_hash,
                created_at=now,
                password_changed_at=now,
            )
            .returning(users)
        )
    except sa.exc.IntegrityError:
        # raced another insert of the same name; the caller's transaction rolls back
        raise conflict(f"the username {username!r} is taken", code="username_taken") from None
    return to_user(result.one()), password


async def get_row_by_username(conn: AsyncConnection, username: str) -> Any:
    return (await conn.execute(sa.select(users).where(users.c.username == username))).first()


async def get_row(conn: AsyncConnection, user_id: int) -> Any:
    return (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()


async def get_user(conn: AsyncConnection, user_id: int) -> User:
    row = await get_row(conn, user_id)
    if row is None:
        raise not_found("no such user")
    return to_user(row)


async def get_user_by_name(conn: AsyncConnection, username: str) -> User:
    row = await get_row_by_username(conn, username)
    if row is None:
        raise not_found(f"no user {username!r}")
    return to_user(row)


async def list_users(conn: AsyncConnection, *, after: int = 0, limit: int = MAX_USERS_LISTED) -> list[User]:
    limit = max(1, min(limit, MAX_USERS_LISTED))
    rows = (
        await conn.execute(sa.select(users).where(users.c.id > after).order_by(users.c.id).limit(limit))
    ).all()
    return [to_user(row) for row in rows]


async def count_admins(conn: AsyncConnection) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(users)
        .where(users.c.role == str(Role.ADMIN), users.c.disabled == sa.false())
    )
    return int((await conn.execute(query)).scalar_one())


async def update_user(
    conn: AsyncConnection,
    user_id: int,
    *,
    role: Role | None = None,
    display_name: str | None = None,
    disabled: bool | None = None,
) -> tuple[User, User]:
    """Change a user; returns (before, after). The last enabled admin cannot lose the role or be disabled."""
    before = await get_user(conn, user_id)
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = str(role)
    if display_name is not None:
        values["display_name"] = display_name
    if disabled is not None:
        values["disabled"] = disabled
    if not values:
        return before, before
    await conn.execute(users.update().where(users.c.id == user_id).values(**values))
    if before.role is Role.ADMIN and not before.disabled and await count_admins(conn) == 0:
        raise ApiError(409, "last_admin", "the last admin cannot lose the admin role or be disabled")
    return before, await get_user(conn, user_id)


async def set_password(conn: AsyncConnection, user_id: int, password: str, *, check: bool = True) -> None:
    if check:
        check_password(password)
    password_hash = await hash_password(password)
    await conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, password_changed_at=time.time())
    )


# -- TOTP and recovery codes -------------------------------------------------------------------------------


async def set_pending_totp(conn: AsyncConnection, user_id: int, secret: str) -> None:
    await conn.execute(users.update().where(users.c.id == user_id).values(totp_pending_secret=secret))


async def claim_totp_step(conn: AsyncConnection, user_id: int, step: int) -> bool:
    """Record that a code for ``step`` was used; False when that step (or a later one) was used already.

    A conditional UPDATE, so two logins racing with the same code cannot both win.
    """
    result = await conn.execute(
        users.update()
        .where(
            users.c.id == user_id,
            sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return result.rowcount == 1


async def enable_totp(conn: AsyncConnection, user_id: int, secret: str, step: int, codes: list[str]) -> None:
    await conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(totp_secret=secret, totp_pending_secret=None, totp_last_step=step)
    )
    await conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))
    now = time.time()
    await conn.execute(
        recovery_codes.insert(),
        [{"user_id": user_id, "code_hash": hash_token(code), "created_at": now} for code in codes],
    )


async def disable_totp(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(totp_secret=None, totp_pending_secret=None, totp_last_step=None)
    )
    await conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))


async def use_recovery_code(conn: AsyncConnection, user_id: int, code: str) -> bool:
    """Spend a recovery code (single use: the UPDATE only matches an unused one)."""
    result = await conn.execute(
        recovery_codes.update()
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hash == hash_token(normalise_recovery_code(code)),
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=time.time())
    )
    return result.rowcount == 1


async def unused_recovery_codes(conn: AsyncConnection, user_id: int) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(recovery_codes)
        .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
    )
    return int((await conn.execute(query)).scalar_one())
