"""Password hashing (argon2id, off the event loop) and the random secrets handed to people."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..config import ServerConfig

#: RFC 9106 "second recommended option": argon2id, t=3, m=64 MiB, p=4 (argon2-cffi's defaults).
#: One hasher per process; ``configure`` replaces it from the server configuration.
_hasher = argon2.PasswordHasher()


def configure(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Set the cost of new hashes for this process (verification reads the cost from each hash)."""
    global _hasher
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) != (time_cost, memory_kib, parallelism):
        _hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        _dummy_hash.cache_clear()


def configure_from(config: ServerConfig) -> None:
    configure(
        time_cost=config.password_hash_time_cost,
        memory_kib=config.password_hash_memory_kib,
        parallelism=config.password_hash_parallelism,
    )


def needs_rehash(stored_hash: str) -> bool:
    """True when a hash was made with other parameters than the configured ones."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash() -> str:
    """Hashed once, on first use, so that a login for an unknown user costs as much as for a known one."""
    return _hasher.hash(secrets.token_urlsafe(16))


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generate_password(length: int = 20) -> str:
    """A random password (about 117 bits), without look-alike characters, to be read out or pasted once."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    if stored_hash is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; ``stored_hash=None`` burns the same time and answers False."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return await asyncio.to_thread(_verify, stored_hash, password)
