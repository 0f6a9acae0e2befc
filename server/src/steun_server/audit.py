"""The audit log: dotted events appended to a hash chain, verified end to end, its head signed by the org key.

Each record holds ``seq, time, event, actor, source, data, prev_hash`` and
``hash = sha256(canonical(record))``, where the canonical form is JSON with sorted keys and no spaces and
includes ``prev_hash``; the first record's ``prev_hash`` is 64 zeros. Appends are serialised by one lock per
process, and ``seq`` is the primary key, so a second node that appends with a stale head fails on the insert
and retries on top of the new head instead of forking the chain. See docs/design/0004-audit-chain.md.

Emitters depend on :class:`AuditSink` only; tests hand in :class:`MemoryAuditSink`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import random
import re
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import StorageError
from .keys import ServerKeys, b64url, b64url_decode
from .storage import Database
from .storage.tables import audit_heads, audit_log

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_CONTEXT = b"steun-audit-head-v1\0"
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_DATA_BYTES = 16 * 1024
PAGE = 1000
APPEND_RETRIES = 20

#: Event names used by the server core (other modules add theirs: ``agent.enrolled``, ``session.start``…).
AUTH_LOGIN = "auth.login"
AUTH_LOGIN_FAILED = "auth.login_failed"
AUTH_LOGOUT = "auth.logout"
AUTH_TOTP_ENABLED = "auth.totp_enabled"
AUTH_TOTP_DISABLED = "auth.totp_disabled"
AUTH_RECOVERY_CODE_USED = "auth.recovery_code_used"
USER_CREATED = "user.created"
USER_ROLE_CHANGED = "user.role_changed"
ENROLLMENT_TOKEN_CREATED = "enrollment.token_created"  # noqa: S105 - an event name
ENROLLMENT_TOKEN_USED = "enrollment.token_used"  # noqa: S105 - an event name
AGENT_ENROLLED = "agent.enrolled"
SERVER_INITIALISED = "server.initialised"


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: float
    event: str
    actor: str | None
    source: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(
    *,
    seq: int,
    time: float,
    event: str,
    actor: str | None,
    source: str | None,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "v": 1,
        "seq": seq,
        "time": time,
        "event": event,
        "actor": actor,
        "source": source,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def head_message(seq: int, head_hash: str) -> bytes:
    """The bytes the org key signs for a chain head."""
    return HEAD_CONTEXT + struct.pack(">Q", seq) + bytes.fromhex(head_hash)


def _check(event: str, data: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    if not EVENT_NAME.match(event) or len(event) > 64:
        raise ValueError(f"audit event names are dotted lower-case words: {event!r}")
    payload = dict(data or {})
    text = canonical_json(payload)
    if len(text.encode()) > MAX_DATA_BYTES:
        raise ValueError(f"audit data for {event} exceeds {MAX_DATA_BYTES} bytes")
    return payload, text


class AuditSink(Protocol):
    """What code that records security events depends on."""

    async def emit(
        self,
        event: str,
        *,
        actor: str | None = None,
        source: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord: ...


class MemoryAuditSink:
    """An in-memory chain with the same hashing, for unit tests of code that emits events."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.records: list[AuditRecord] = []
        self._clock = clock

    async def emit(
        self,
        event: str,
        *,
        actor: str | None = None,
        source: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        payload, _ = _check(event, data)
        prev = self.records[-1].hash if self.records else GENESIS_HASH
        seq = len(self.records) + 1
        now = self._clock()
        digest = record_hash(
            seq=seq, time=now, event=event, actor=actor, source=source, data=payload, prev_hash=prev
        )
        record = AuditRecord(seq, now, event, actor, source, payload, prev, digest)
        self.records.append(record)
        return record

    def events(self) -> list[str]:
        return [r.event for r in self.records]


class AuditLog:
    """The database-backed chain."""

    def __init__(self, db: Database, keys: ServerKeys | None = None, clock: Callable[[], float] = time.time):
        self.db = db
        self.keys = keys
        self._clock = clock
        self._lock = asyncio.Lock()
        self.appended = 0

    async def emit(
        self,
        event: str,
        *,
        actor: str | None = None,
        source: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        payload, text = _check(event, data)
        async with self._lock:
            for attempt in range(APPEND_RETRIES):
                try:
                    async with self.db.begin() as conn:
                        head = (
                            await conn.execute(
                                sa.select(audit_log.c.seq, audit_log.c.hash)
                                .order_by(audit_log.c.seq.desc())
                                .limit(1)
                            )
                        ).first()
                        seq = (head.seq + 1) if head else 1
                        prev = head.hash if head else GENESIS_HASH
                        # stored as written so the float survives the round trip bit for bit
                        now = float(self._clock())
                        digest = record_hash(
                            seq=seq,
                            time=now,
                            event=event,
                            actor=actor,
                            source=source,
                            data=payload,
                            prev_hash=prev,
                        )
                        await conn.execute(
                            audit_log.insert().values(
                                seq=seq,
                                time=now,
                                event=event,
                                actor=actor,
                                source=source,
                                data=text,
                                prev_hash=prev,
                                hash=digest,
                            )
                        )
                    self.appended += 1
                    return AuditRecord(seq, now, event, actor, source, payload, prev, digest)
                except sa.exc.IntegrityError:
                    # another node appended the same seq first: build on its record instead, after a
                    # random pause so that two nodes in lock step stop colliding
                    log.info("audit append raced another writer; retrying")
                    await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            raise StorageError("audit append failed after repeated conflicts")

    async def head(self) -> tuple[int, str] | None:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
                )
            ).first()
        return (int(row.seq), str(row.hash)) if row else None

    async def sign_head(self) -> int | None:
        """Sign the current head with the org key (once per head); returns the signed seq."""
        if self.keys is None:
            return None
        head = await self.head()
        if head is None:
            return None
        seq, digest = head
        signature = b64url(self.keys.sign(head_message(seq, digest)))
        try:
            async with self.db.begin() as conn:
                exists = (
                    await conn.execute(sa.select(audit_heads.c.seq).where(audit_heads.c.seq == seq))
                ).first()
                if exists:
                    return seq
                await conn.execute(
                    audit_heads.insert().values(
                        seq=seq,
                        hash=digest,
                        signed_at=self._clock(),
                        signature=signature,
                        public_key=b64url(self.keys.org_public_key),
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another node signed the same head
        return seq

    async def records(self, *, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        limit = max(1, min(limit, PAGE))
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit)
                )
            ).all()
        return [_to_record(row) for row in rows]


def _to_record(row: Any) -> AuditRecord:
    try:
        data = json.loads(row.data)
    except ValueError:
        data = {"_unparseable": row.data}
    if not isinstance(data, dict):
        data = {"_not_an_object": data}
    return AuditRecord(
        int(row.seq), float(row.time), row.event, row.actor, row.source, data, row.prev_hash, row.hash
    )


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    #: records checked before stopping
    checked: int
    #: the first record whose hash, link or number is wrong (None when the chain is intact)
    first_broken_seq: int | None = None
    reason: str = ""
    #: the newest signed head that was checked (its signature and its record)
    signed_head_seq: int | None = None


async def verify_chain(db: Database, org_public_key: bytes | None = None) -> VerifyResult:
    """Walk the whole chain in pages; stop at the first broken record. Then check the signed heads."""
    checked = 0
    expected_seq = 1
    prev = GENESIS_HASH
    hashes_at_heads: dict[int, str] = {}
    async with db.connect() as conn:
        head_rows = (
            await conn.execute(sa.select(audit_heads).order_by(audit_heads.c.seq.desc()).limit(PAGE))
        ).all()
        wanted = {int(r.seq) for r in head_rows}
        after = 0
        while True:
            rows = (
                await conn.execute(
                    sa.select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(PAGE)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                seq = int(row.seq)
                if seq != expected_seq:
                    return VerifyResult(False, checked, expected_seq, f"record {expected_seq} is missing")
                if row.prev_hash != prev:
                    return VerifyResult(False, checked, seq, "prev_hash does not match the previous record")
                try:
                    data = json.loads(row.data)
                except ValueError:
                    return VerifyResult(False, checked, seq, "data is not JSON")
                try:
                    digest = record_hash(
                        seq=seq,
                        time=float(row.time),
                        event=row.event,
                        actor=row.actor,
                        source=row.source,
                        data=data,
                        prev_hash=row.prev_hash,
                    )
                except ValueError:
                    return VerifyResult(False, checked, seq, "data cannot be encoded canonically")
                if digest != row.hash:
                    return VerifyResult(False, checked, seq, "hash does not match the record")
                if seq in wanted:
                    hashes_at_heads[seq] = row.hash
                prev = row.hash
                expected_seq += 1
                checked += 1
            after = int(rows[-1].seq)
    newest_signed: int | None = None
    for row in head_rows:
        seq = int(row.seq)
        if seq not in hashes_at_heads:
            return VerifyResult(False, checked, seq, f"signed head {seq} points past the end of the chain")
        if hashes_at_heads[seq] != row.hash:
            return VerifyResult(False, checked, seq, f"signed head {seq} does not match record {seq}")
        key_bytes = b64url_decode(row.public_key)
        if org_public_key is not None and key_bytes != org_public_key:
            return VerifyResult(False, checked, seq, f"signed head {seq} was signed by another key")
        try:
            Ed25519PublicKey.from_public_bytes(key_bytes).verify(
                b64url_decode(row.signature), head_message(seq, row.hash)
            )
        except (InvalidSignature, ValueError):
            return VerifyResult(False, checked, seq, f"signature of head {seq} is not valid")
        newest_signed = max(newest_signed or 0, seq)
    return VerifyResult(True, checked, None, "", newest_signed)


async def run_head_signer(audit: AuditLog, interval: float) -> None:
    """Background task: sign the chain head every ``interval`` seconds (and nothing when it has not moved)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await audit.sign_head()
        except Exception:
            log.exception("signing the audit head failed")
