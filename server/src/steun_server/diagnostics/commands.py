"""Console websocket commands for routine tests (``steun_protocol.diagnostics_console``).

``diagnostics/run`` and ``diagnostics/statuses`` are subscriptions. Each has one bounded queue and one pump
task that waits for room in the console's send queue before sending, so a slow console holds back its own
events (a run has at most ``MAX_RESULTS_PER_RUN`` results) and never the agent or the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from steun_protocol.catalogue import Lang, load_catalogue
from steun_protocol.diagnostics import MAX_RESULTS_PER_RUN, Policy
from steun_protocol.diagnostics_console import (
    MAX_TOP_FAILURES,
    CatalogueResult,
    DeviceStatus,
    DiagCatalogueGet,
    DiagFleetGet,
    DiagHistoryGet,
    DiagLatestGet,
    DiagPolicyGet,
    DiagPolicyList,
    DiagPolicySet,
    DiagRunsList,
    DiagRunStart,
    DiagStatusesSubscribe,
    FleetDevice,
    FleetReport,
    GroupPolicy,
    GroupPolicySummary,
    History,
    Latest,
    LatestResult,
    LocalCatalogue,
    LocalCheck,
    PolicyList,
    RunEvent,
    RunList,
    RunStarted,
    StatusChanged,
    StatusList,
    TopFailure,
)
from steun_protocol.errors import ErrorCode

from ..auth.roles import Role
from ..fleet import store as fleet_store
from ..fleet.commands import wait_for_room
from ..wsapi import CommandError, CommandSpec, ConsoleConnection
from . import store
from .policy import effective_policy, problems
from .service import (
    DIAGNOSTICS,
    DIAGNOSTICS_POLICY_CHANGED,
    DIAGNOSTICS_RUN_REQUESTED,
    DiagnosticsError,
    DiagnosticsService,
)

log = logging.getLogger(__name__)

#: Status changes one ``diagnostics/statuses`` subscriber may have pending (beyond: it is told to resync).
MAX_PENDING_STATUSES = 1024


def _service(conn: ConsoleConnection) -> DiagnosticsService:
    return conn.app[DIAGNOSTICS]


def _start_pump(
    conn: ConsoleConnection, msg_id: int, pump: Callable[[], Awaitable[None]], stop: Callable[[], None]
) -> None:
    async def guarded() -> None:
        try:
            await pump()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("diagnostics subscription %d failed", msg_id)
        finally:
            stop()

    task = asyncio.create_task(guarded(), name=f"steun-diagnostics-{msg_id}")

    def unsubscribe() -> None:
        task.cancel()
        stop()

    conn.subscribe(msg_id, unsubscribe)


# -- catalogue -----------------------------------------------------------------------------------------------


@functools.cache
def local_catalogue(lang: Lang) -> LocalCatalogue:
    cat = load_catalogue()
    return LocalCatalogue(
        lang=lang,
        version=cat.version,
        groups={g.id: g.title.get(lang) for g in cat.groups},
        statuses={status: text.get(lang) for status, text in cat.statuses.items()},
        common={name: text.get(lang) for name, text in cat.common.items()},
        labels={name: text.get(lang) for name, text in cat.labels.items()},
        checks=[
            LocalCheck(
                id=c.id,
                group=c.group,
                title=c.title.get(lang),
                measures=c.measures.get(lang),
                explanation=c.explanation.get(lang),
                fix=c.fix.get(lang),
                kb_key=c.kb_key,
                unit=c.unit,
                per=c.per,
                summaries={name: text.get(lang) for name, text in c.summaries.items()},
                thresholds={name: t.default for name, t in c.thresholds.items()},
            )
            for c in cat.checks
        ],
    )


async def catalogue_get(conn: ConsoleConnection, msg_id: int, params: DiagCatalogueGet) -> CatalogueResult:
    if params.lang is not None:
        return CatalogueResult(local=local_catalogue(params.lang))
    return CatalogueResult(catalogue=load_catalogue())


# -- runs ----------------------------------------------------------------------------------------------------


async def run_start(conn: ConsoleConnection, msg_id: int, params: DiagRunStart) -> RunStarted:
    service = _service(conn)
    catalogue = service.catalogue
    groups = {g.id for g in catalogue.groups}
    unknown = [g for g in params.groups if g not in groups] + [
        c for c in params.checks if c not in catalogue.by_id
    ]
    if unknown:
        raise CommandError(ErrorCode.INVALID_MESSAGE, f"unknown groups or tests: {unknown[:8]}")
    # every event of the run fits: the queue never drops, and the run bounds it
    queue: asyncio.Queue[RunEvent] = asyncio.Queue(maxsize=MAX_RESULTS_PER_RUN + 2)

    def listener(event: RunEvent) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:  # pragma: no cover - bounded by the run's own limit
            log.warning("diagnostics subscription %d dropped an event", msg_id)

    try:
        started = await service.start_run(
            params.device_id,
            trigger="console",
            requested_by=conn.user.username,
            groups=params.groups,
            checks=params.checks,
            listener=listener,
        )
    except DiagnosticsError as exc:
        raise CommandError(exc.code, exc.message) from None
    await service.emit(
        DIAGNOSTICS_RUN_REQUESTED,
        actor=conn.user.username,
        data={
            "device_id": params.device_id,
            "run_id": started.run.id,
            "groups": list(params.groups),
            "checks": list(params.checks)[:64],
        },
    )
    run_id = started.run.id
    # the listener was added when the run started; this is the way to remove it (a no-op once it ended)
    remove = service.watch(run_id, listener)

    async def pump() -> None:
        while True:
            event = await queue.get()
            await wait_for_room(conn)
            conn.send_event(msg_id, event)
            if event.kind == "done":
                return

    _start_pump(conn, msg_id, pump, remove)
    return started


async def latest_get(conn: ConsoleConnection, msg_id: int, params: DiagLatestGet) -> Latest:
    service = _service(conn)
    device = await fleet_store.get_device(service.db, params.device_id)
    if device is None or device.revoked:
        raise CommandError(ErrorCode.NOT_FOUND, f"no device {params.device_id!r}")
    records = await store.latest(service.db, params.device_id)
    running = service.running_on(params.device_id)
    recent = await store.list_runs(service.db, params.device_id, limit=3)
    last_run = next((run for run in recent if run.state != "running"), None)
    return Latest(
        device_id=params.device_id,
        results=[
            LatestResult(
                check_id=r.check_id,
                subject=r.subject,
                status=r.status,
                time=r.time,
                run_id=r.run_id,
                failing_since=r.failing_since,
                result=r.result,
            )
            for r in records
        ],
        running=running,
        last_run=last_run,
    )


async def runs_list(conn: ConsoleConnection, msg_id: int, params: DiagRunsList) -> RunList:
    return RunList(runs=await store.list_runs(_service(conn).db, params.device_id, limit=params.limit))


async def history_get(conn: ConsoleConnection, msg_id: int, params: DiagHistoryGet) -> History:
    service = _service(conn)
    spec = service.catalogue.by_id.get(params.check_id)
    points = await store.history(
        service.db,
        device_id=params.device_id,
        check_id=params.check_id,
        subject=params.subject,
        since=params.since,
        until=params.until,
        limit=params.limit,
    )
    return History(
        device_id=params.device_id,
        check_id=params.check_id,
        subject=params.subject,
        unit=spec.unit if spec is not None else "",
        points=points,
    )


# -- the fleet -----------------------------------------------------------------------------------------------


async def fleet_get(conn: ConsoleConnection, msg_id: int, params: DiagFleetGet) -> FleetReport:
    service = _service(conn)
    catalogue = service.catalogue
    since = time.time() - params.days * 86400.0
    failing: list[FleetDevice] = []
    if params.check_id is not None:
        presence = service.fleet.presence
        records = await store.failing_devices(
            service.db, check_id=params.check_id, statuses=params.statuses, limit=params.limit
        )
        failing = [
            FleetDevice(
                device_id=r.device_id,
                hostname=r.hostname,
                group=r.group,
                online=presence.online(r.device_id),
                subject=r.subject,
                status=r.status,
                time=r.time,
                failing_since=r.failing_since,
                result=r.result,
            )
            for r in records
        ]
    frequent = await store.frequent_failures(service.db, since=since, limit=MAX_TOP_FAILURES)
    top = [
        TopFailure(
            check_id=f.check_id,
            devices=f.devices,
            results=f.results,
            fail=f.fail,
            warn=f.warn,
            kb_key=spec.kb_key if (spec := catalogue.by_id.get(f.check_id)) is not None else None,
        )
        for f in frequent
    ]
    return FleetReport(since=since, check_id=params.check_id, failing=failing, top=top)


async def statuses_subscribe(
    conn: ConsoleConnection, msg_id: int, params: DiagStatusesSubscribe
) -> StatusList:
    service = _service(conn)
    pending: dict[str, DeviceStatus] = {}
    wakeup = asyncio.Event()

    def listener(status: DeviceStatus) -> None:
        # coalescing: a device's newer status replaces an unsent older one; memory stays bounded
        if status.device_id in pending or len(pending) < MAX_PENDING_STATUSES:
            pending[status.device_id] = status
            wakeup.set()

    service.status_listeners.add(listener)
    try:
        initial = await store.device_statuses(service.db)
    except BaseException:
        service.status_listeners.discard(listener)
        raise

    async def pump() -> None:
        while True:
            await wakeup.wait()
            wakeup.clear()
            while pending:
                await wait_for_room(conn)
                _, status = pending.popitem()
                conn.send_event(msg_id, StatusChanged(device=status))

    _start_pump(conn, msg_id, pump, lambda: service.status_listeners.discard(listener))
    return StatusList(devices=initial)


# -- group policy --------------------------------------------------------------------------------------------


async def _group_policy(service: DiagnosticsService, group: str) -> GroupPolicy:
    record = await store.get_policy(service.db, group)
    policy = record.policy if record is not None else None
    effective = effective_policy(
        policy, catalogue=service.catalogue, public_url=service.config.effective_public_url
    )
    if record is None:
        return GroupPolicy(group=group, policy=Policy(), effective=effective)
    return GroupPolicy(
        group=group,
        policy=record.policy,
        interval=record.interval,
        updated_at=record.updated_at,
        updated_by=record.updated_by,
        effective=effective,
    )


async def policy_list(conn: ConsoleConnection, msg_id: int, params: DiagPolicyList) -> PolicyList:
    rows = await store.list_group_policies(_service(conn).db)
    return PolicyList(
        groups=[
            GroupPolicySummary(
                group=r.group,
                description=r.description[:256],
                devices=r.devices,
                interval=r.interval,
                customised=r.customised,
            )
            for r in rows
        ]
    )


async def policy_get(conn: ConsoleConnection, msg_id: int, params: DiagPolicyGet) -> GroupPolicy:
    service = _service(conn)
    if not await store.group_exists(service.db, params.group):
        raise CommandError(ErrorCode.NOT_FOUND, f"no device group {params.group!r}")
    return await _group_policy(service, params.group)


async def policy_set(conn: ConsoleConnection, msg_id: int, params: DiagPolicySet) -> GroupPolicy:
    service = _service(conn)
    found = problems(params.policy, params.interval, service.catalogue)
    if found:
        raise CommandError(ErrorCode.INVALID_MESSAGE, "; ".join(found[:10]))
    try:
        await store.set_policy(
            service.db,
            params.group,
            params.policy,
            interval=params.interval,
            now=time.time(),
            by=conn.user.username,
        )
    except store.DiagnosticsStoreError as exc:
        raise CommandError(exc.code, exc.message) from None
    await service.emit(
        DIAGNOSTICS_POLICY_CHANGED,
        actor=conn.user.username,
        data={
            "group": params.group,
            "interval": params.interval,
            "thresholds": sorted(params.policy.thresholds)[:64],
            "disabled": sorted(params.policy.disabled)[:64],
        },
    )
    return await _group_policy(service, params.group)


COMMANDS = [
    CommandSpec(
        type="diagnostics/catalogue",
        handler=catalogue_get,
        params=DiagCatalogueGet,
        permission=Role.TECHNICIAN,
        summary="The routine-test catalogue (every language, or one)",
    ),
    CommandSpec(
        type="diagnostics/run",
        handler=run_start,
        params=DiagRunStart,
        permission=Role.TECHNICIAN,
        summary="Run tests on an online device; results stream as events, then a done event",
    ),
    CommandSpec(
        type="diagnostics/latest",
        handler=latest_get,
        params=DiagLatestGet,
        permission=Role.TECHNICIAN,
        summary="A device's latest result of each test and item, with failing since",
    ),
    CommandSpec(
        type="diagnostics/runs",
        handler=runs_list,
        params=DiagRunsList,
        permission=Role.TECHNICIAN,
        summary="A device's recent runs",
    ),
    CommandSpec(
        type="diagnostics/history",
        handler=history_get,
        params=DiagHistoryGet,
        permission=Role.TECHNICIAN,
        summary="One test's values on one device over time",
    ),
    CommandSpec(
        type="diagnostics/fleet",
        handler=fleet_get,
        params=DiagFleetGet,
        permission=Role.TECHNICIAN,
        summary="Devices failing a test now; the most frequent failures of the last days",
    ),
    CommandSpec(
        type="diagnostics/statuses",
        handler=statuses_subscribe,
        params=DiagStatusesSubscribe,
        permission=Role.TECHNICIAN,
        summary="Every device's worst latest status, then changes as runs finish",
    ),
    CommandSpec(
        type="diagnostics/policy/list",
        handler=policy_list,
        params=DiagPolicyList,
        permission=Role.ADMIN,
        summary="Device groups with their test schedule",
    ),
    CommandSpec(
        type="diagnostics/policy/get",
        handler=policy_get,
        params=DiagPolicyGet,
        permission=Role.ADMIN,
        summary="A device group's test policy and schedule, and the policy a run would send",
    ),
    CommandSpec(
        type="diagnostics/policy/set",
        handler=policy_set,
        params=DiagPolicySet,
        permission=Role.ADMIN,
        summary="Replace a device group's test policy and schedule",
    ),
]
