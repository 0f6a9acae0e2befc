"""diagnostics/run, /result and /done through two protocol connections; bounds of results and policies."""

from __future__ import annotations

import msgspec
import pytest
from steun_protocol import LocalProtocolError, RequestReceived, ResultReceived
from steun_protocol.codec import encode
from steun_protocol.control import AGENT_API
from steun_protocol.diagnostics import (
    MAX_MEASURED,
    MAX_PARAMS,
    CheckResult,
    DiagnosticsAccepted,
    DiagnosticsDone,
    DiagnosticsResult,
    DiagnosticsRun,
    Policy,
    SoftwareRequirement,
    count_statuses,
    worst,
)
from steun_protocol.messages import Empty

from tests.protocol.helpers import ConnectionPair


def result(**changes: object) -> CheckResult:
    base: dict[str, object] = {
        "check_id": "disk.free",
        "status": "warn",
        "summary_key": "disk.free.level",
        "summary_params": {"free_percent": 20.0, "volume": "/"},
        "subject": "/",
        "value": 20.0,
        "unit": "%",
        "kb_key": "disk-full",
        "duration_ms": 3.5,
    }
    return msgspec.convert({**base, **changes}, type=CheckResult)


def test_requests_are_registered_in_the_agent_api() -> None:
    for cls in (DiagnosticsRun, DiagnosticsResult, DiagnosticsDone):
        assert AGENT_API.requests[cls.type_name()] is cls


POLICY = Policy(
    thresholds={"disk.free": {"warn_below": 30}},
    required_software=[SoftwareRequirement(name="firefox-esr", min_version="115.0")],
    https_urls=["https://intranet.example/health"],
    server_host="steun.example",
    expected_ports=[22, 443],
)


def test_the_run_request_decodes_on_the_agent_side() -> None:
    request = DiagnosticsRun(id=3, run_id="run-1", groups=["hardware"], checks=["net.dns"], policy=POLICY)
    assert AGENT_API.decode(encode(request)) == request


def test_a_whole_run_travels_between_server_and_agent() -> None:
    pair = ConnectionPair()
    pair.hello()
    policy = Policy(
        thresholds={"disk.free": {"warn_below": 30}},
        required_software=[SoftwareRequirement(name="firefox-esr", min_version="115.0")],
        https_urls=["https://intranet.example/health"],
        server_host="steun.example",
        expected_ports=[22, 443],
    )
    pair.server.send_request(
        DiagnosticsRun(run_id="run-1", groups=["hardware"], checks=["net.dns"], policy=policy)
    )
    (event,) = pair.flush(pair.server)
    assert isinstance(event, RequestReceived) and event.request.policy == policy  # type: ignore[attr-defined]
    pair.client.send_result(event.request.id, DiagnosticsAccepted(accepted=["disk.free", "net.dns"]))
    (answer,) = pair.flush(pair.client)
    assert isinstance(answer, ResultReceived) and answer.result.accepted == ["disk.free", "net.dns"]  # type: ignore[attr-defined]

    pair.client.send_request(DiagnosticsResult(run_id="run-1", result=result()))
    (got,) = pair.flush(pair.client)
    assert isinstance(got, RequestReceived) and got.request.result == result()  # type: ignore[attr-defined]
    pair.server.send_result(got.request.id, Empty())
    pair.flush(pair.server)
    done = DiagnosticsDone(run_id="run-1", counts=count_statuses(["warn"]), checks=1, results=1, wall_ms=12.5)
    pair.client.send_request(done)
    (got,) = pair.flush(pair.client)
    assert got.request == msgspec.structs.replace(done, id=got.request.id)  # type: ignore[attr-defined]


def test_only_the_server_may_ask_for_a_run() -> None:
    pair = ConnectionPair()
    pair.hello()
    with pytest.raises(LocalProtocolError):
        pair.client.send_request(DiagnosticsRun(run_id="r"))


@pytest.mark.parametrize(
    "change",
    [
        {"measured": {f"k{i}": i for i in range(MAX_MEASURED + 1)}},
        {"summary_params": {f"p{i}": i for i in range(MAX_PARAMS + 1)}},
        {"status": "maybe"},
        {"check_id": "Disk Free"},
        {"summary_key": "<script>"},
        {"subject": "x" * 257},
        {"measured": {"nested": {"a": 1}}},
        {"kb_key": "../../etc/passwd"},
    ],
)
def test_results_out_of_bounds_are_refused(change: dict[str, object]) -> None:
    data = msgspec.to_builtins(result())
    data.update(change)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(data, type=CheckResult)


def test_the_largest_possible_result_fits_its_message_limit() -> None:
    # Every text at its length limit, made of characters JSON escapes as \u00XX (six bytes each).
    nasty = "\x01" * 256
    big = CheckResult(
        check_id="a." + "b" * 62,
        status="error",
        summary_key="c." + "d" * 94,
        summary_params={f"p{i:02d}" + "x" * 36: nasty for i in range(MAX_PARAMS)},
        subject=nasty,
        value=nasty,
        unit="\x01" * 16,
        measured={f"m{i:02d}" + "x" * 36: nasty for i in range(MAX_MEASURED)},
        thresholds={f"t{i}" + "x" * 37: -1e12 for i in range(8)},
        detail="\x01" * 1024,
        kb_key="k" * 96,
        duration_ms=3_600_000,
    )
    size = len(encode(DiagnosticsResult(id=2**53 - 1, run_id="r" * 64, result=big)))
    assert size <= DiagnosticsResult.max_size


@pytest.mark.parametrize(
    "change",
    [
        {"https_urls": ["http://plain.example"]},
        {"https_urls": ["https://user:pw@host.example"]},
        {"expected_ports": [0]},
        {"expected_ports": list(range(1, 300))},
        {"check_timeout": 0},
        {"check_timeout": 31},
        {"thresholds": {"disk.free": {"warn_below": float("inf")}}},
        {"required_services": ["ssh; rm -rf /"]},
        {"server_host": "host name"},
    ],
)
def test_policies_out_of_bounds_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(change, type=Policy)


def test_the_largest_policy_fits_the_run_message() -> None:
    policy = Policy(
        thresholds={f"c{i:03d}.x": {f"t{j}": 1.0 for j in range(8)} for i in range(256)},
        disabled=[f"c{i:03d}.x" for i in range(256)],
        required_software=[SoftwareRequirement(name="p" * 128, min_version="9" * 64) for _ in range(64)],
        required_services=["s" * 128] * 64,
        expected_ports=[65535] * 256,
        https_urls=["https://" + "h" * 2040] * 16,
        dns_names=["n" * 253] * 8,
        server_host="h" * 253,
    )
    data = encode(
        DiagnosticsRun(
            id=2**53 - 1,
            run_id="r" * 64,
            groups=["g" * 32] * 16,
            checks=[f"c{i:03d}.x" for i in range(256)],
            policy=policy,
        )
    )
    assert len(data) <= DiagnosticsRun.max_size


def test_worst_ranks_a_warning_above_an_error_and_not_applicable_as_a_pass() -> None:
    assert worst([]) == "pass"
    assert worst(["pass", "not_applicable"]) == "pass"
    assert worst(["error", "warn", "pass"]) == "warn"
    assert worst(["warn", "fail", "error"]) == "fail"
    assert worst(["not_applicable", "error"]) == "error"


def test_results_and_done_travel_from_agent_to_server() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.client.send_request(DiagnosticsResult(run_id="run-1", result=result()))
    (got,) = pair.flush(pair.client)
    assert isinstance(got, RequestReceived) and got.request.result == result()  # type: ignore[attr-defined]
    pair.server.send_result(got.request.id, Empty())
    pair.flush(pair.server)
    done = DiagnosticsDone(run_id="run-1", counts=count_statuses(["warn"]), checks=1, results=1, wall_ms=12.5)
    pair.client.send_request(done)
    (got,) = pair.flush(pair.client)
    assert got.request == msgspec.structs.replace(done, id=got.request.id)  # type: ignore[attr-defined]
