"""Routine tests on the console websocket: run them, read results, history, the fleet view and group policy.

Console → server commands (``/api/ws``), registered in ``steun_protocol.console.CONSOLE_API``:

- ``diagnostics/catalogue``: the test catalogue (all three languages, or rendered in one);
- ``diagnostics/run``: start a run on an online device; a subscription whose events are each result as it is
  stored, then one ``done`` event;
- ``diagnostics/latest``, ``diagnostics/runs``, ``diagnostics/history``: one device's latest result per test
  (with "failing since"), its recent runs, one test's numeric series;
- ``diagnostics/fleet``: which devices fail a test now, and what failed most often over the last days;
- ``diagnostics/statuses``: every device's worst latest status (a subscription; the device list's column);
- ``diagnostics/policy/list|get|set``: each device group's policy and schedule (administrators).

Everything a result holds came from an agent: consoles render it as text only.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from .catalogue import Catalogue, Lang
from .diagnostics import (
    MAX_CHECKS_PER_RUN,
    MAX_RESULTS_PER_RUN,
    CheckId,
    CheckResult,
    GroupId,
    KbKey,
    Policy,
    RunId,
    Status,
    Threshold,
)
from .limits import MAX_TEXT_MESSAGE
from .messages import DeviceId, Payload, Request, ShortText

#: Longest and shortest schedule interval a group may have (seconds).
MIN_INTERVAL = 60
MAX_INTERVAL = 30 * 86400
#: Most points one history answer holds (the newest ones).
MAX_HISTORY_POINTS = 1000
#: Most rows of the fleet view's lists.
MAX_FLEET_DEVICES = 1000
MAX_TOP_FAILURES = 100
#: Latest results one device may hold (tests × items).
MAX_LATEST = 4096
MAX_RUNS_LISTED = 100
MAX_DEVICES = 5000

GroupName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
]
RunState = Literal["running", "done", "cancelled", "timeout", "disconnected", "rejected", "abandoned"]
Trigger = Literal["console", "schedule"]
FailingStatus = Literal["fail", "warn", "error"]
Interval = Annotated[int, msgspec.Meta(ge=MIN_INTERVAL, le=MAX_INTERVAL)]
Time = Annotated[float, msgspec.Meta(ge=0)]


# -- values ------------------------------------------------------------------------------------------------


class RunInfo(Payload, frozen=True, kw_only=True):
    """One run as the server recorded it."""

    id: RunId
    device_id: DeviceId
    trigger: Trigger
    requested_by: ShortText | None = None
    started_at: float
    finished_at: float | None = None
    state: RunState
    #: Tests that reported, results stored, and results per status.
    checks: int = 0
    results: int = 0
    counts: dict[Status, int] = {}
    timed_out: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    wall_ms: float | None = None
    #: What was asked: groups and tests (both empty: the whole catalogue).
    groups: Annotated[list[GroupId], msgspec.Meta(max_length=16)] = []
    selected: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []


class StoredResult(Payload, frozen=True, kw_only=True):
    """A result as stored: the agent's ``CheckResult`` with its run and the time the server received it."""

    run_id: RunId
    time: float
    result: CheckResult


class RunStarted(Payload, frozen=True, kw_only=True):
    run: RunInfo
    #: The tests the agent will run, and the requested names it does not know.
    accepted: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)]
    unknown: Annotated[list[ShortText], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    #: The server closes the run as ``timeout`` this many seconds after it started.
    timeout: float


class RunEvent(Payload, frozen=True, kw_only=True):
    """An event of a ``diagnostics/run`` subscription: a result, then finally ``done`` with the run."""

    kind: Literal["result", "done"]
    result: StoredResult | None = None
    run: RunInfo | None = None


class LatestResult(Payload, frozen=True, kw_only=True):
    check_id: CheckId
    subject: ShortText | None = None
    status: Status
    time: float
    run_id: RunId
    #: When the current run of ``warn``/``fail`` results began (null while passing; kept through ``error``).
    failing_since: float | None = None
    result: CheckResult


class Latest(Payload, frozen=True, kw_only=True):
    device_id: DeviceId
    results: Annotated[list[LatestResult], msgspec.Meta(max_length=MAX_LATEST)]
    #: The run in progress on this device, if any, and the last finished one.
    running: RunInfo | None = None
    last_run: RunInfo | None = None


class RunList(Payload, frozen=True, kw_only=True):
    runs: Annotated[list[RunInfo], msgspec.Meta(max_length=MAX_RUNS_LISTED)]


class HistoryPoint(Payload, frozen=True, kw_only=True):
    time: float
    value: float | None
    status: Status


class History(Payload, frozen=True, kw_only=True):
    device_id: DeviceId
    check_id: CheckId
    subject: ShortText | None = None
    unit: ShortText = ""
    #: Oldest first; the newest ``limit`` points of the range.
    points: Annotated[list[HistoryPoint], msgspec.Meta(max_length=MAX_HISTORY_POINTS)]


class FleetDevice(Payload, frozen=True, kw_only=True):
    device_id: DeviceId
    hostname: ShortText
    group: ShortText
    online: bool
    subject: ShortText | None = None
    status: Status
    time: float
    failing_since: float | None = None
    result: CheckResult


class TopFailure(Payload, frozen=True, kw_only=True):
    check_id: CheckId
    #: Devices with at least one such result in the period, and how many results there were.
    devices: int
    results: int
    fail: int
    warn: int
    kb_key: KbKey | None = None


class FleetReport(Payload, frozen=True, kw_only=True):
    since: float
    check_id: CheckId | None = None
    #: Devices whose latest result of ``check_id`` has one of the asked statuses (worst first).
    failing: Annotated[list[FleetDevice], msgspec.Meta(max_length=MAX_FLEET_DEVICES)] = []
    #: The tests that failed or warned on most devices since ``since``.
    top: Annotated[list[TopFailure], msgspec.Meta(max_length=MAX_TOP_FAILURES)] = []


class DeviceStatus(Payload, frozen=True, kw_only=True):
    """A device's worst latest result (``pass`` also stands for "only not applicable")."""

    device_id: DeviceId
    worst: Status
    counts: dict[Status, int] = {}
    time: float


class StatusList(Payload, frozen=True, kw_only=True):
    devices: Annotated[list[DeviceStatus], msgspec.Meta(max_length=MAX_DEVICES)]


class StatusChanged(Payload, frozen=True, kw_only=True):
    device: DeviceStatus


class GroupPolicy(Payload, frozen=True, kw_only=True):
    group: GroupName
    #: What the group sets (empty: catalogue defaults); ``interval``: seconds between scheduled runs.
    policy: Policy
    interval: Interval | None = None
    updated_at: float | None = None
    updated_by: ShortText | None = None
    #: What a run sends: this policy merged over the catalogue's defaults and the server's address.
    effective: Policy


class GroupPolicySummary(Payload, frozen=True, kw_only=True):
    group: GroupName
    description: ShortText = ""
    devices: int = 0
    interval: Interval | None = None
    customised: bool = False


class PolicyList(Payload, frozen=True, kw_only=True):
    groups: Annotated[list[GroupPolicySummary], msgspec.Meta(max_length=1000)]


class LocalCheck(Payload, frozen=True, kw_only=True):
    """A catalogue entry rendered in one language."""

    id: CheckId
    group: GroupId
    title: str
    measures: str
    explanation: str
    fix: str
    kb_key: KbKey
    unit: str = ""
    per: str = ""
    summaries: dict[str, str] = {}
    thresholds: dict[str, Threshold] = {}


class LocalCatalogue(Payload, frozen=True, kw_only=True):
    lang: Lang
    version: int
    groups: dict[GroupId, str]
    statuses: dict[Status, str]
    common: dict[str, str]
    labels: dict[str, str]
    checks: list[LocalCheck]


class CatalogueResult(Payload, frozen=True, kw_only=True):
    """The full catalogue (every language), or with ``lang`` asked, ``local`` in that language only."""

    catalogue: Catalogue | None = None
    local: LocalCatalogue | None = None


# -- commands ----------------------------------------------------------------------------------------------


class DiagCatalogueGet(Request, tag="diagnostics/catalogue", frozen=True, kw_only=True):
    lang: Lang | None = None
    Result: ClassVar[type[Payload]] = CatalogueResult
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagRunStart(Request, tag="diagnostics/run", frozen=True, kw_only=True):
    """Run tests on an online device now: no groups and no checks means the whole catalogue."""

    device_id: DeviceId
    groups: Annotated[list[GroupId], msgspec.Meta(max_length=16)] = []
    checks: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    Result: ClassVar[type[Payload]] = RunStarted
    Event: ClassVar[type[Payload] | None] = RunEvent
    max_result_size: ClassVar[int] = 128 * 1024


class DiagLatestGet(Request, tag="diagnostics/latest", frozen=True, kw_only=True):
    device_id: DeviceId
    Result: ClassVar[type[Payload]] = Latest
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagRunsList(Request, tag="diagnostics/runs", frozen=True, kw_only=True):
    device_id: DeviceId
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_RUNS_LISTED)] = 20
    Result: ClassVar[type[Payload]] = RunList
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagHistoryGet(Request, tag="diagnostics/history", frozen=True, kw_only=True):
    device_id: DeviceId
    check_id: CheckId
    #: The item (volume, interface...); null: the result about the machine as a whole.
    subject: ShortText | None = None
    since: Time | None = None
    until: Time | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_HISTORY_POINTS)] = 200
    Result: ClassVar[type[Payload]] = History
    max_result_size: ClassVar[int] = 256 * 1024


class DiagFleetGet(Request, tag="diagnostics/fleet", frozen=True, kw_only=True):
    """``check_id``: list the devices failing it now; always: the most frequent failures of the last days."""

    check_id: CheckId | None = None
    statuses: Annotated[list[FailingStatus], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: ["fail", "warn"]
    )
    days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_FLEET_DEVICES)] = 200
    Result: ClassVar[type[Payload]] = FleetReport
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagStatusesSubscribe(Request, tag="diagnostics/statuses", frozen=True, kw_only=True):
    """Every device's worst latest status, then a ``StatusChanged`` event whenever a run changes one."""

    Result: ClassVar[type[Payload]] = StatusList
    Event: ClassVar[type[Payload] | None] = StatusChanged
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagPolicyList(Request, tag="diagnostics/policy/list", frozen=True, kw_only=True):
    Result: ClassVar[type[Payload]] = PolicyList
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DiagPolicyGet(Request, tag="diagnostics/policy/get", frozen=True, kw_only=True):
    group: GroupName
    Result: ClassVar[type[Payload]] = GroupPolicy
    max_result_size: ClassVar[int] = 512 * 1024


class DiagPolicySet(Request, tag="diagnostics/policy/set", frozen=True, kw_only=True):
    """Replace a group's policy and schedule (``interval`` null: no scheduled runs)."""

    group: GroupName
    policy: Policy
    interval: Interval | None = None
    Result: ClassVar[type[Payload]] = GroupPolicy
    max_size: ClassVar[int] = 128 * 1024
    max_result_size: ClassVar[int] = 512 * 1024


#: The commands of this module, for ``steun_protocol.console.CONSOLE_API``.
DIAGNOSTICS_COMMANDS: tuple[type[Request], ...] = (
    DiagCatalogueGet,
    DiagRunStart,
    DiagLatestGet,
    DiagRunsList,
    DiagHistoryGet,
    DiagFleetGet,
    DiagStatusesSubscribe,
    DiagPolicyList,
    DiagPolicyGet,
    DiagPolicySet,
)

__all__ = [
    "DIAGNOSTICS_COMMANDS",
    "MAX_RESULTS_PER_RUN",
    "CatalogueResult",
    "DeviceStatus",
    "DiagCatalogueGet",
    "DiagFleetGet",
    "DiagHistoryGet",
    "DiagLatestGet",
    "DiagPolicyGet",
    "DiagPolicyList",
    "DiagPolicySet",
    "DiagRunStart",
    "DiagRunsList",
    "DiagStatusesSubscribe",
    "FleetDevice",
    "FleetReport",
    "GroupPolicy",
    "GroupPolicySummary",
    "History",
    "HistoryPoint",
    "Latest",
    "LatestResult",
    "LocalCatalogue",
    "LocalCheck",
    "PolicyList",
    "RunEvent",
    "RunInfo",
    "RunList",
    "RunStarted",
    "StatusChanged",
    "StatusList",
    "StoredResult",
    "TopFailure",
]
