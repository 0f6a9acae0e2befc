"""Routine-test queries: runs, results, the latest result per test and item, group policy (SQLAlchemy Core).

Every list is bounded with LIMIT. Each stored result also updates ``diag_latest`` (one row per device, test
and item) in the same transaction, with one ``INSERT … ON CONFLICT DO UPDATE`` that both SQLite and
PostgreSQL run atomically; "failing since" is computed there, so the device page, the device list and the
fleet view read that small table instead of the history.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from steun_protocol.diagnostics import SEVERITY, STATUSES, CheckResult, Policy, Status, worst
from steun_protocol.diagnostics_console import (
    MAX_DEVICES,
    MAX_HISTORY_POINTS,
    MAX_LATEST,
    DeviceStatus,
    HistoryPoint,
    RunInfo,
)

from ..storage import Database
from ..storage.tables import (
    device_groups,
    devices,
    diag_group_policy,
    diag_latest,
    diag_results,
    diag_runs,
)

#: Largest ``IN (...)`` list sent in one statement.
CHUNK = 500
#: Rows deleted per transaction by the retention purge (keeps each transaction short).
PURGE_BATCH = 5000
#: Statuses that start (or continue) a "failing since" streak; ``error`` neither starts nor ends one.
FAILING: tuple[Status, ...] = ("warn", "fail")
_COUNT_COLUMNS: dict[Status, str] = {
    "pass": "count_pass",
    "warn": "count_warn",
    "fail": "count_fail",
    "error": "count_error",
    "not_applicable": "count_na",
}
_result_decoder = msgspec.json.Decoder(CheckResult)
_policy_decoder = msgspec.json.Decoder(Policy)


class DiagnosticsStoreError(Exception):
    """A write was refused; ``code`` is the stable error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def numeric(value: object) -> float | None:
    """The headline value as a number for the history, or None (text, flags, infinities)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def decode_result(text: str) -> CheckResult | None:
    try:
        return _result_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # written by an older schema


# -- runs ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    device_id: str
    trigger: str
    requested_by: str | None
    groups: list[str]
    checks: list[str]
    policy: Policy
    started_at: float


def _run_info(row: Any) -> RunInfo:
    counts: dict[Status, int] = {
        status: int(getattr(row, column)) for status, column in _COUNT_COLUMNS.items()
    }
    try:
        selection = msgspec.json.decode(row.selection, type=dict[str, list[str]])
    except (msgspec.ValidationError, msgspec.DecodeError):
        selection = {}
    try:
        timed_out = msgspec.json.decode(row.timed_out, type=list[str])
    except (msgspec.ValidationError, msgspec.DecodeError):
        timed_out = []
    return RunInfo(
        id=row.id,
        device_id=row.device_id,
        trigger=row.trigger,
        requested_by=row.requested_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
        state=row.state,
        checks=row.checks,
        results=row.results,
        counts=counts,
        timed_out=timed_out,
        wall_ms=row.wall_ms,
        groups=selection.get("groups", []),
        selected=selection.get("checks", []),
    )


async def create_run(db: Database, run: NewRun) -> RunInfo:
    selection = msgspec.json.encode({"groups": run.groups, "checks": run.checks}).decode()
    values = {
        "id": run.id,
        "device_id": run.device_id,
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "selection": selection,
        "policy": msgspec.json.encode(run.policy).decode(),
        "started_at": run.started_at,
        "state": "running",
    }
    async with db.begin() as conn:
        await conn.execute(diag_runs.insert().values(**values))
        row = (await conn.execute(sa.select(diag_runs).where(diag_runs.c.id == run.id))).one()
    return _run_info(row)


async def get_run(db: Database, run_id: str) -> RunInfo | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(diag_runs).where(diag_runs.c.id == run_id))).first()
    return _run_info(row) if row is not None else None


async def run_policy(db: Database, run_id: str) -> Policy | None:
    """The policy a run was sent with (the thresholds that applied)."""
    async with db.connect() as conn:
        text = (await conn.execute(sa.select(diag_runs.c.policy).where(diag_runs.c.id == run_id))).scalar()
    if text is None:
        return None
    try:
        return _policy_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


async def list_runs(db: Database, device_id: str, *, limit: int) -> list[RunInfo]:
    stmt = (
        sa.select(diag_runs)
        .where(diag_runs.c.device_id == device_id)
        .order_by(diag_runs.c.started_at.desc())
        .limit(limit)
    )
    async with db.connect() as conn:
        return [_run_info(row) for row in (await conn.execute(stmt)).all()]


async def finish_run(
    db: Database,
    run_id: str,
    *,
    state: str,
    now: float,
    timed_out: Sequence[str] = (),
    wall_ms: float | None = None,
) -> RunInfo | None:
    """Close a run (once: a closed run stays as it is).

    After a complete run, items of its tests that no longer reported (an unmounted volume, a removed printer)
    leave the device's latest results.
    """
    async with db.begin() as conn:
        checks = (
            await conn.execute(
                sa.select(sa.func.count(sa.distinct(diag_results.c.check_id))).where(
                    diag_results.c.run_id == run_id
                )
            )
        ).scalar_one()
        updated = await conn.execute(
            diag_runs.update()
            .where(diag_runs.c.id == run_id, diag_runs.c.state == "running")
            .values(
                state=state,
                finished_at=now,
                checks=checks,
                timed_out=msgspec.json.encode(sorted(timed_out)).decode(),
                wall_ms=wall_ms,
            )
        )
        row = (await conn.execute(sa.select(diag_runs).where(diag_runs.c.id == run_id))).first()
        if row is not None and updated.rowcount and state == "done":
            reported = sa.select(diag_results.c.check_id).where(diag_results.c.run_id == run_id).distinct()
            await conn.execute(
                diag_latest.delete().where(
                    diag_latest.c.device_id == row.device_id,
                    diag_latest.c.check_id.in_(reported),
                    diag_latest.c.run_id != run_id,
                )
            )
    return _run_info(row) if row is not None else None


async def abandon_stale_runs(db: Database, *, started_before: float, now: float) -> int:
    """Close runs left ``running`` by a node that stopped (crash, kill) before their agent finished."""
    async with db.begin() as conn:
        result = await conn.execute(
            diag_runs.update()
            .where(diag_runs.c.state == "running", diag_runs.c.started_at < started_before)
            .values(state="abandoned", finished_at=now)
        )
    return int(result.rowcount or 0)


async def last_run_times(db: Database, device_ids: Iterable[str]) -> dict[str, float]:
    """When each device's newest run started (devices without runs are left out)."""
    ids = list(dict.fromkeys(device_ids))
    found: dict[str, float] = {}
    async with db.connect() as conn:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            stmt = (
                sa.select(diag_runs.c.device_id, sa.func.max(diag_runs.c.started_at))
                .where(diag_runs.c.device_id.in_(chunk))
                .group_by(diag_runs.c.device_id)
            )
            for device_id, started in (await conn.execute(stmt)).all():
                found[device_id] = float(started)
    return found


# -- results -------------------------------------------------------------------------------------------------


def _insert_for(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def add_result(db: Database, *, run_id: str, device_id: str, result: CheckResult, now: float) -> None:
    """Store one result of a run and bring the device's latest result of that test and item up to date."""
    data = msgspec.json.encode(result).decode()
    subject = result.subject or ""
    severity = SEVERITY[result.status]
    async with db.begin() as conn:
        inserted = await conn.execute(
            diag_results.insert().values(
                run_id=run_id,
                device_id=device_id,
                check_id=result.check_id,
                subject=subject,
                status=result.status,
                severity=severity,
                value_num=numeric(result.value),
                data=data,
                summary_key=result.summary_key,
                kb_key=result.kb_key,
                duration_ms=result.duration_ms,
                time=now,
            )
        )
        key = inserted.inserted_primary_key
        assert key is not None
        result_id = key[0]
        insert = _insert_for(conn)
        stmt = insert(diag_latest).values(
            device_id=device_id,
            check_id=result.check_id,
            subject=subject,
            result_id=result_id,
            run_id=run_id,
            status=result.status,
            severity=severity,
            data=data,
            time=now,
            failing_since=now if result.status in FAILING else None,
        )
        new = stmt.excluded
        failing_since = sa.case(
            (new.status.in_(FAILING), sa.func.coalesce(diag_latest.c.failing_since, new.time)),
            (new.status == "error", diag_latest.c.failing_since),
            else_=sa.null(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[diag_latest.c.device_id, diag_latest.c.check_id, diag_latest.c.subject],
            set_={
                "result_id": new.result_id,
                "run_id": new.run_id,
                "status": new.status,
                "severity": new.severity,
                "data": new.data,
                "time": new.time,
                "failing_since": failing_since,
            },
            # results of an older run that arrive late never replace a newer one
            where=diag_latest.c.time <= new.time,
        )
        await conn.execute(stmt)
        column = diag_runs.c[_COUNT_COLUMNS[result.status]]
        await conn.execute(
            diag_runs.update()
            .where(diag_runs.c.id == run_id)
            .values({diag_runs.c.results: diag_runs.c.results + 1, column: column + 1})
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LatestRecord:
    check_id: str
    subject: str | None
    status: Status
    time: float
    run_id: str
    failing_since: float | None
    result: CheckResult


async def latest(db: Database, device_id: str) -> list[LatestRecord]:
    stmt = (
        sa.select(diag_latest)
        .where(diag_latest.c.device_id == device_id)
        .order_by(diag_latest.c.check_id, diag_latest.c.subject)
        .limit(MAX_LATEST)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    records: list[LatestRecord] = []
    for row in rows:
        result = decode_result(row.data)
        if result is None:
            continue
        records.append(
            LatestRecord(
                check_id=row.check_id,
                subject=row.subject or None,
                status=row.status,
                time=row.time,
                run_id=row.run_id,
                failing_since=row.failing_since,
                result=result,
            )
        )
    return records


async def history(
    db: Database,
    *,
    device_id: str,
    check_id: str,
    subject: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[HistoryPoint]:
    """One test's results for one item over time, oldest first (the newest ``limit`` of the range)."""
    clauses = [
        diag_results.c.device_id == device_id,
        diag_results.c.check_id == check_id,
        diag_results.c.subject == (subject or ""),
    ]
    if since is not None:
        clauses.append(diag_results.c.time >= since)
    if until is not None:
        clauses.append(diag_results.c.time <= until)
    stmt = (
        sa.select(diag_results.c.time, diag_results.c.value_num, diag_results.c.status)
        .where(*clauses)
        .order_by(diag_results.c.time.desc())
        .limit(min(limit, MAX_HISTORY_POINTS))
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [HistoryPoint(time=row.time, value=row.value_num, status=row.status) for row in reversed(rows)]


# -- the fleet -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FailingRecord:
    device_id: str
    hostname: str
    group: str
    subject: str | None
    status: Status
    time: float
    failing_since: float | None
    result: CheckResult


async def failing_devices(
    db: Database, *, check_id: str, statuses: Sequence[str], limit: int
) -> list[FailingRecord]:
    """Devices whose latest ``check_id`` result has one of ``statuses``: worst, then longest failing first."""
    stmt = (
        sa.select(
            diag_latest.c.device_id,
            diag_latest.c.subject,
            diag_latest.c.status,
            diag_latest.c.time,
            diag_latest.c.failing_since,
            diag_latest.c.data,
            devices.c.hostname,
            devices.c.group_name,
        )
        .join(devices, devices.c.id == diag_latest.c.device_id)
        .where(
            diag_latest.c.check_id == check_id,
            diag_latest.c.status.in_(list(statuses)),
            devices.c.revoked == sa.false(),
        )
        .order_by(
            diag_latest.c.severity.desc(),
            sa.func.coalesce(diag_latest.c.failing_since, diag_latest.c.time),
            devices.c.hostname,
        )
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    records: list[FailingRecord] = []
    for row in rows:
        result = decode_result(row.data)
        if result is None:
            continue
        records.append(
            FailingRecord(
                device_id=row.device_id,
                hostname=row.hostname,
                group=row.group_name,
                subject=row.subject or None,
                status=row.status,
                time=row.time,
                failing_since=row.failing_since,
                result=result,
            )
        )
    return records


@dataclasses.dataclass(frozen=True, slots=True)
class FrequentFailure:
    check_id: str
    devices: int
    results: int
    fail: int
    warn: int


async def frequent_failures(db: Database, *, since: float, limit: int) -> list[FrequentFailure]:
    """The tests that warned or failed on most devices since ``since`` (the frequent-problem map)."""
    device_count = sa.func.count(sa.distinct(diag_results.c.device_id))
    result_count = sa.func.count()
    stmt = (
        sa.select(
            diag_results.c.check_id,
            device_count.label("devices"),
            result_count.label("results"),
            sa.func.sum(sa.case((diag_results.c.status == "fail", 1), else_=0)).label("fail"),
            sa.func.sum(sa.case((diag_results.c.status == "warn", 1), else_=0)).label("warn"),
        )
        .where(diag_results.c.time >= since, diag_results.c.status.in_(FAILING))
        .group_by(diag_results.c.check_id)
        .order_by(device_count.desc(), result_count.desc(), diag_results.c.check_id)
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        FrequentFailure(
            check_id=row.check_id,
            devices=int(row.devices),
            results=int(row.results),
            fail=int(row.fail or 0),
            warn=int(row.warn or 0),
        )
        for row in rows
    ]


async def device_statuses(db: Database, device_ids: Iterable[str] | None = None) -> list[DeviceStatus]:
    """Each device's worst latest status with counts per status (all devices, or the ones named)."""
    base = sa.select(
        diag_latest.c.device_id,
        diag_latest.c.status,
        sa.func.count().label("n"),
        sa.func.max(diag_latest.c.time).label("time"),
    ).group_by(diag_latest.c.device_id, diag_latest.c.status)
    rows: list[Any] = []
    async with db.connect() as conn:
        if device_ids is None:
            stmt = base.order_by(diag_latest.c.device_id).limit(MAX_DEVICES * len(STATUSES))
            rows = list((await conn.execute(stmt)).all())
        else:
            ids = list(dict.fromkeys(device_ids))
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                rows += (await conn.execute(base.where(diag_latest.c.device_id.in_(chunk)))).all()
    by_device: dict[str, tuple[dict[Status, int], float]] = {}
    for row in rows:
        counts, when = by_device.get(row.device_id, ({}, 0.0))
        counts[row.status] = int(row.n)
        by_device[row.device_id] = (counts, max(when, float(row.time)))
    return [
        DeviceStatus(device_id=device_id, worst=worst(counts), counts=counts, time=when)
        for device_id, (counts, when) in by_device.items()
    ]


# -- group policy --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyRecord:
    group: str
    policy: Policy
    interval: int | None
    updated_at: float | None
    updated_by: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupPolicyRow:
    group: str
    description: str
    devices: int
    interval: int | None
    customised: bool


def _decode_policy(text: str) -> Policy:
    try:
        return _policy_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return Policy()  # written by an older schema: defaults until an administrator saves it again


async def group_exists(db: Database, group: str) -> bool:
    async with db.connect() as conn:
        stmt = sa.select(device_groups.c.name).where(device_groups.c.name == group)
        return (await conn.execute(stmt)).first() is not None


async def get_policy(db: Database, group: str) -> PolicyRecord | None:
    async with db.connect() as conn:
        row = (
            await conn.execute(sa.select(diag_group_policy).where(diag_group_policy.c.group_name == group))
        ).first()
    if row is None:
        return None
    return PolicyRecord(
        group=row.group_name,
        policy=_decode_policy(row.policy),
        interval=row.interval_s or None,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


async def set_policy(
    db: Database, group: str, policy: Policy, *, interval: int | None, now: float, by: str | None
) -> PolicyRecord:
    text = msgspec.json.encode(policy).decode()
    async with db.begin() as conn:
        found = (
            await conn.execute(sa.select(device_groups.c.name).where(device_groups.c.name == group))
        ).first()
        if found is None:
            raise DiagnosticsStoreError("not_found", f"no device group {group!r}")
        values = {"policy": text, "interval_s": interval, "updated_at": now, "updated_by": by}
        updated = await conn.execute(
            diag_group_policy.update().where(diag_group_policy.c.group_name == group).values(**values)
        )
        if not updated.rowcount:
            await conn.execute(diag_group_policy.insert().values(group_name=group, **values))
    return PolicyRecord(group=group, policy=policy, interval=interval, updated_at=now, updated_by=by)


async def list_group_policies(db: Database, *, limit: int = 1000) -> list[GroupPolicyRow]:
    counts = (
        sa.select(devices.c.group_name, sa.func.count().label("n"))
        .where(devices.c.revoked == sa.false())
        .group_by(devices.c.group_name)
        .subquery()
    )
    stmt = (
        sa.select(
            device_groups.c.name,
            device_groups.c.description,
            sa.func.coalesce(counts.c.n, 0).label("devices"),
            diag_group_policy.c.interval_s,
            diag_group_policy.c.group_name.label("customised"),
        )
        .select_from(device_groups)
        .outerjoin(counts, counts.c.group_name == device_groups.c.name)
        .outerjoin(diag_group_policy, diag_group_policy.c.group_name == device_groups.c.name)
        .order_by(device_groups.c.name)
        .limit(limit)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        GroupPolicyRow(
            group=row.name,
            description=row.description,
            devices=int(row.devices),
            interval=row.interval_s or None,
            customised=row.customised is not None,
        )
        for row in rows
    ]


async def scheduled_groups(db: Database) -> dict[str, int]:
    """Groups with a schedule, and their interval in seconds."""
    stmt = sa.select(diag_group_policy.c.group_name, diag_group_policy.c.interval_s).where(
        diag_group_policy.c.interval_s > 0
    )
    async with db.connect() as conn:
        return {row.group_name: int(row.interval_s) for row in (await conn.execute(stmt)).all()}


async def group_policies(db: Database, groups: Iterable[str]) -> dict[str, Policy]:
    names = list(dict.fromkeys(groups))
    found: dict[str, Policy] = {}
    async with db.connect() as conn:
        for start in range(0, len(names), CHUNK):
            chunk = names[start : start + CHUNK]
            stmt = sa.select(diag_group_policy.c.group_name, diag_group_policy.c.policy).where(
                diag_group_policy.c.group_name.in_(chunk)
            )
            for row in (await conn.execute(stmt)).all():
                found[row.group_name] = _decode_policy(row.policy)
    return found


# -- retention -----------------------------------------------------------------------------------------------


async def purge(db: Database, *, before: float, batch: int = PURGE_BATCH) -> int:
    """Delete results and finished runs older than ``before``, a batch per transaction; returns rows deleted.

    The latest result of each test stays in ``diag_latest`` however old it is (it is what the device shows).
    """
    deleted = 0
    for table, column, extra in (
        (diag_results, diag_results.c.time, ()),
        (diag_runs, diag_runs.c.started_at, (diag_runs.c.state != "running",)),
    ):
        key = table.c.id
        while True:
            async with db.begin() as conn:
                ids = sa.select(key).where(column < before, *extra).limit(batch).scalar_subquery()
                result = await conn.execute(table.delete().where(key.in_(ids)))
            count = int(result.rowcount or 0)
            deleted += count
            if count < batch:
                break
    return deleted
