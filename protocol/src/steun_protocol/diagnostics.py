"""Routine tests on the control plane: a test's result, the policy a run applies, and the run requests.

A run goes: the server sends ``diagnostics/run`` (which tests, with which policy); the agent answers with the
test ids it accepted, then sends one ``diagnostics/result`` per result as each test finishes, and one
``diagnostics/done`` at the end. Results carry a summary *key* and parameters, never a rendered sentence, so
that agent and console render it from the catalogue's templates in the reader's language
(``steun_protocol.catalogue``).

A test about several items (volumes, interfaces, URLs, services) sends one result per item, named by
``subject``; a test about the machine as a whole sends one result with ``subject`` null.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal

import msgspec

from .limits import SHORT_TEXT
from .messages import Payload, Request, Sender, ShortText

Status = Literal["pass", "warn", "fail", "error", "not_applicable"]
#: Every status, in the order reports list them.
STATUSES: tuple[Status, ...] = ("fail", "warn", "error", "pass", "not_applicable")
#: How bad a status is, for "the worst result of a test / a run". A warning outranks "could not tell"
#: (``error``); ``not_applicable`` is as good as a pass: it is not a finding.
SEVERITY: dict[Status, int] = {"pass": 0, "not_applicable": 0, "error": 1, "warn": 2, "fail": 3}

#: The groups of the catalogue, in display order.
GROUPS: tuple[str, ...] = ("hardware", "os", "software", "network", "security")

#: Per-test timeout an agent applies unless the policy says otherwise (seconds).
DEFAULT_CHECK_TIMEOUT = 2.5
#: A whole run ends at most this long after the per-test timeout (cancel, collect, report).
RUN_GRACE = 0.5
#: Bounds on one run and on one result.
MAX_CHECKS_PER_RUN = 256
MAX_RESULTS_PER_RUN = 2048
MAX_MEASURED = 16
MAX_PARAMS = 16
MAX_THRESHOLDS = 8
MAX_VALUE_TEXT = SHORT_TEXT
MAX_DETAIL = 1024

_DOTTED = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"
CheckId = Annotated[str, msgspec.Meta(min_length=3, max_length=64, pattern=_DOTTED)]
GroupId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
RunId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SummaryKey = Annotated[str, msgspec.Meta(min_length=3, max_length=96, pattern=_DOTTED)]
ParamName = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
KbKey = Annotated[str, msgspec.Meta(min_length=1, max_length=96, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Unit = Annotated[str, msgspec.Meta(max_length=16)]
ValueText = Annotated[str, msgspec.Meta(max_length=MAX_VALUE_TEXT)]
#: A measured value or template parameter: a number, a short text, a flag, or null (unknown).
Scalar = bool | int | float | ValueText | None
Threshold = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
HostName = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")]
HttpsUrl = Annotated[
    str, msgspec.Meta(min_length=9, max_length=2048, pattern=r"^https://[^\s/?#@]+(?:[/?#]\S*)?$")
]
ServiceName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9@._:\\-]+$")]
PackageName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9+._:~-]*$")
]
VersionText = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9+._:~-]+$")]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")]


class CheckResult(Payload, frozen=True):
    """The outcome of one test (for one item, when the test is about several)."""

    check_id: CheckId
    status: Status
    #: The sentence to show: ``<check id>.<name>`` or ``common.<name>``, a template in the catalogue.
    summary_key: SummaryKey
    summary_params: Annotated[dict[ParamName, Scalar], msgspec.Meta(max_length=MAX_PARAMS)] = {}
    #: The item this result is about (a mount point, an interface, a URL); null: the machine as a whole.
    subject: ShortText | None = None
    #: The headline measured value, in ``unit`` (null when nothing could be measured).
    value: Scalar = None
    unit: Unit = ""
    #: Further measured figures, for the technician.
    measured: Annotated[dict[ParamName, Scalar], msgspec.Meta(max_length=MAX_MEASURED)] = {}
    #: The thresholds this result was graded against (catalogue defaults with the policy's overrides).
    thresholds: Annotated[dict[ParamName, Threshold], msgspec.Meta(max_length=MAX_THRESHOLDS)] = {}
    #: Technical detail in no particular language (an error message, a command's complaint).
    detail: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)] = ""
    #: The knowledge-base article this result points to (set on warn and fail).
    kb_key: KbKey | None = None
    duration_ms: Annotated[float, msgspec.Meta(ge=0, le=3_600_000)] = 0.0


class SoftwareRequirement(Payload, frozen=True):
    """A package that must be installed, optionally at a minimum version (package manager's own names)."""

    name: PackageName
    min_version: VersionText | None = None


class Policy(Payload, frozen=True):
    """What a device group expects; set on the server, sent with every run. Empty means catalogue defaults."""

    #: Overrides of the catalogue's default thresholds: ``{"disk.free": {"warn_below": 20}}``.
    thresholds: Annotated[
        dict[CheckId, Annotated[dict[ParamName, Threshold], msgspec.Meta(max_length=MAX_THRESHOLDS)]],
        msgspec.Meta(max_length=MAX_CHECKS_PER_RUN),
    ] = {}
    #: Tests this group never runs.
    disabled: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    required_software: Annotated[list[SoftwareRequirement], msgspec.Meta(max_length=64)] = []
    required_services: Annotated[list[ServiceName], msgspec.Meta(max_length=64)] = []
    #: TCP ports that may listen on a non-loopback address; null: the catalogue's default list.
    expected_ports: Annotated[list[Port], msgspec.Meta(max_length=256)] | None = None
    https_urls: Annotated[list[HttpsUrl], msgspec.Meta(max_length=16)] = []
    #: Names the DNS test resolves; empty: the Steun server's name, else the catalogue's default.
    dns_names: Annotated[list[HostName], msgspec.Meta(max_length=8)] = []
    #: The Steun server as agents reach it (the reachability test); null: not tested.
    server_host: HostName | None = None
    server_port: Port = 443
    #: The IANA time zone devices of this group should use; null: any zone passes.
    expected_timezone: TimeZoneName | None = None
    #: Per-test timeout in seconds; a run ends at most ``RUN_GRACE`` after it.
    check_timeout: Annotated[float, msgspec.Meta(ge=0.1, le=30)] = DEFAULT_CHECK_TIMEOUT


class DiagnosticsAccepted(Payload, frozen=True):
    """The agent's answer to ``diagnostics/run``: the tests it will run (results follow)."""

    accepted: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)]
    #: Requested ids or groups this agent does not know (a newer catalogue on the server); not run.
    unknown: Annotated[list[ShortText], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []


class DiagnosticsRun(Request, tag="diagnostics/run", frozen=True):
    """Server → agent: run routine tests. No groups and no checks means the whole catalogue."""

    run_id: RunId
    groups: Annotated[list[GroupId], msgspec.Meta(max_length=16)] = []
    checks: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    policy: Policy = Policy()
    Result: ClassVar[type[Payload]] = DiagnosticsAccepted
    # The largest policy (every list full) encodes to about 86 KB.
    max_size: ClassVar[int] = 128 * 1024
    sender: ClassVar[Sender] = Sender.SERVER


class DiagnosticsResult(Request, tag="diagnostics/result", frozen=True):
    """Agent → server: one result of a run, sent as soon as its test finishes."""

    run_id: RunId
    result: CheckResult
    # Worst case: every text field full of characters that JSON escapes as \uXXXX (six bytes each).
    max_size: ClassVar[int] = 64 * 1024


class DiagnosticsDone(Request, tag="diagnostics/done", frozen=True):
    """Agent → server: the run is over; no more results for ``run_id`` follow."""

    run_id: RunId
    counts: Annotated[dict[Status, Count], msgspec.Meta(max_length=5)]
    checks: Count
    results: Count
    wall_ms: Annotated[float, msgspec.Meta(ge=0, le=3_600_000)]
    #: Tests that did not finish within their timeout (each also sent an ``error`` result).
    timed_out: Annotated[list[CheckId], msgspec.Meta(max_length=MAX_CHECKS_PER_RUN)] = []
    #: True when the run was stopped early (agent shutting down); the results sent so far stand.
    cancelled: bool = False
    max_size: ClassVar[int] = 32 * 1024


#: The requests of this module, for ``steun_protocol.control.AGENT_API``.
DIAGNOSTICS_REQUESTS: tuple[type[Request], ...] = (DiagnosticsRun, DiagnosticsResult, DiagnosticsDone)


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status of several (``pass`` for none); ties keep the first seen."""
    result: Status = "pass"
    for status in statuses:
        if SEVERITY[status] > SEVERITY[result]:
            result = status
    return result


def count_statuses(statuses: Iterable[Status]) -> dict[Status, int]:
    """How many of each status, with every status present (zero when absent)."""
    counts: dict[Status, int] = dict.fromkeys(("pass", "warn", "fail", "error", "not_applicable"), 0)
    for status in statuses:
        counts[status] += 1
    return counts
