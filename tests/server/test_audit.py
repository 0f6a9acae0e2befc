"""The audit chain: hashing, the memory sink, appends on a real database, tamper detection, signed heads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_server.audit import (
    GENESIS_HASH,
    AuditLog,
    MemoryAuditSink,
    record_hash,
    verify_chain,
)
from steun_server.keys import ServerKeys, raw_public_key
from steun_server.storage import Database
from steun_server.storage.tables import audit_heads, audit_log

from tests.support.fixtures import BOTH_DATABASES, database_url


def make_keys() -> ServerKeys:
    key = Ed25519PrivateKey.generate()
    return ServerKeys(org_key=key, org_public_key=raw_public_key(key), spki_sha256=b"\0" * 32)


@pytest.fixture(params=BOTH_DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_url(request.param, tmp_path) as url:
        database = await Database.open(url)
        try:
            await database.migrate()
            yield database
        finally:
            await database.close()


async def test_memory_sink_chains() -> None:
    sink = MemoryAuditSink(clock=lambda: 5.0)
    first = await sink.emit("user.created", actor="admin", data={"username": "bob"})
    second = await sink.emit("auth.login", actor="bob", source="127.0.0.1")
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.hash == record_hash(
        seq=2, time=5.0, event="auth.login", actor="bob", source="127.0.0.1", data={}, prev_hash=first.hash
    )
    assert sink.events() == ["user.created", "auth.login"]


async def test_event_names_and_sizes_checked() -> None:
    sink = MemoryAuditSink()
    for bad in ("login", "Auth.Login", "auth..login", "auth.login!"):
        with pytest.raises(ValueError, match="dotted"):
            await sink.emit(bad)
    with pytest.raises(ValueError, match="exceeds"):
        await sink.emit("x.y", data={"blob": "x" * 20_000})


def test_hash_covers_every_field() -> None:
    base = {
        "seq": 1,
        "time": 1.5,
        "event": "a.b",
        "actor": "x",
        "source": "s",
        "data": {"k": 1},
        "prev_hash": "0" * 64,
    }
    digest = record_hash(**base)  # type: ignore[arg-type]
    for field, other in [
        ("seq", 2),
        ("time", 1.25),
        ("event", "a.c"),
        ("actor", "y"),
        ("source", None),
        ("data", {"k": 2}),
        ("prev_hash", "1" * 64),
    ]:
        assert record_hash(**{**base, field: other}) != digest, field  # type: ignore[arg-type]
    # key order in data does not matter (canonical JSON)
    assert record_hash(**{**base, "data": {"b": 1, "a": 2}}) == record_hash(  # type: ignore[arg-type]
        **{**base, "data": {"a": 2, "b": 1}}
    )


async def test_chain_on_database_verifies_and_detects_tampering(db: Database) -> None:
    keys = make_keys()
    audit = AuditLog(db, keys)
    for i in range(5):
        await audit.emit("test.event", actor="t", source="127.0.0.1", data={"i": i, "text": "héllo"})
    assert await audit.sign_head() == 5
    result = await verify_chain(db, keys.org_public_key)
    assert result.ok and result.checked == 5 and result.signed_head_seq == 5
    async with db.begin() as conn:
        await conn.execute(
            audit_log.update().where(audit_log.c.seq == 3).values(data='{"i":99,"text":"héllo"}')
        )
    result = await verify_chain(db, keys.org_public_key)
    assert not result.ok
    assert result.first_broken_seq == 3
    assert result.checked == 2


async def test_deleted_record_is_found(db: Database) -> None:
    audit = AuditLog(db, make_keys())
    for i in range(4):
        await audit.emit("test.event", data={"i": i})
    async with db.begin() as conn:
        await conn.execute(audit_log.delete().where(audit_log.c.seq == 2))
    result = await verify_chain(db)
    assert (result.ok, result.first_broken_seq) == (False, 2)


async def test_forged_signed_head_is_found(db: Database) -> None:
    keys = make_keys()
    audit = AuditLog(db, keys)
    await audit.emit("test.event")
    await audit.sign_head()
    other = make_keys()
    assert (await verify_chain(db, keys.org_public_key)).ok
    result = await verify_chain(db, other.org_public_key)
    assert not result.ok and "another key" in result.reason
    async with db.begin() as conn:
        await conn.execute(audit_heads.update().values(hash="f" * 64))
    result = await verify_chain(db, keys.org_public_key)
    assert not result.ok and result.first_broken_seq == 1


async def test_concurrent_appends_stay_one_chain(db: Database) -> None:
    """Two AuditLog objects on one database stand in for two server nodes: no fork, no lost record."""
    node_a, node_b = AuditLog(db), AuditLog(db)
    await asyncio.gather(
        *(node.emit("test.event", data={"n": i}) for i in range(10) for node in (node_a, node_b))
    )
    async with db.connect() as conn:
        seqs = (await conn.execute(sa.select(audit_log.c.seq).order_by(audit_log.c.seq))).scalars().all()
    assert seqs == list(range(1, 21))
    assert (await verify_chain(db)).ok
