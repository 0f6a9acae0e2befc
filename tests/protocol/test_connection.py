"""The sans-I/O connection: requests, replies, events, subscriptions, version negotiation, failures."""

from __future__ import annotations

import json

import pytest
from steun_protocol import (
    ConnectionFailed,
    ErrorCode,
    ErrorReceived,
    EventReceived,
    FrameReceived,
    LocalProtocolError,
    RequestReceived,
    ResultReceived,
)
from steun_protocol.console import (
    CONSOLE_API,
    DeviceList,
    DevicesChanged,
    DevicesSubscribe,
    DeviceSummary,
    Unsubscribe,
)
from steun_protocol.control import Auth, AuthResult, Heartbeat, Hello
from steun_protocol.frames import Frame, FrameType
from steun_protocol.inventory import LiveMetrics
from steun_protocol.messages import Empty

from .helpers import ConnectionPair

METRICS = LiveMetrics(uptime=1.0, cpu_percent=5.0, memory_percent=10.0, memory_used=1000)


def test_hello_negotiates_the_highest_common_version() -> None:
    pair = ConnectionPair()
    pair.hello(versions=[0, 1, 7])
    assert pair.client.version == 1
    assert pair.server.version == 1


def test_unsupported_version_fails_both_sides_with_the_same_code() -> None:
    pair = ConnectionPair()
    pair.client.send_request(Hello(versions=[99], software="future/9"))
    (failed,) = pair.flush(pair.client)
    assert isinstance(failed, ConnectionFailed)
    assert failed.code == ErrorCode.UNSUPPORTED_VERSION and not failed.by_peer
    assert "99" in failed.message
    (told,) = pair.flush(pair.server)
    assert isinstance(told, ConnectionFailed)
    assert told.code == ErrorCode.UNSUPPORTED_VERSION and told.by_peer
    assert failed.close_code == 1008


def test_server_choosing_a_version_not_offered_is_refused() -> None:
    pair = ConnectionPair()
    pair.client.send_request(Hello(versions=[1], software="t"))
    pair.flush(pair.client)
    pair.client.receive_text('{"id":1,"type":"result","result":{"version":2,"nonce":"AA","server_time":0}}')
    (failed,) = pair.client.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.UNSUPPORTED_VERSION


def test_requests_before_hello_are_fatal() -> None:
    pair = ConnectionPair()
    pair.server.receive_text(json.dumps({"id": 1, "type": "auth", "device_id": "d", "signature": "AA"}))
    (failed,) = pair.server.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.HELLO_REQUIRED


def test_client_cannot_send_before_hello() -> None:
    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError) as info:
        pair.client.send_request(Auth(device_id="d", signature="AA"))
    assert info.value.code == ErrorCode.HELLO_REQUIRED


def test_request_result_round_trip_is_typed() -> None:
    pair = ConnectionPair()
    pair.hello()
    sent = pair.client.send_request(Auth(device_id="dev1", signature="c2ln"))
    (received,) = pair.flush(pair.client)
    assert isinstance(received, RequestReceived) and received.request == sent
    pair.server.send_result(sent.id, AuthResult(heartbeat_interval=30))
    (reply,) = pair.flush(pair.server)
    assert isinstance(reply, ResultReceived)
    assert reply.request == sent and reply.result == AuthResult(heartbeat_interval=30)


def test_error_reply_reaches_the_requester() -> None:
    pair = ConnectionPair()
    pair.hello()
    sent = pair.client.send_request(Auth(device_id="dev1", signature="c2ln"))
    pair.flush(pair.client)
    pair.server.send_error(sent.id, ErrorCode.AUTH_FAILED, "bad signature")
    (reply,) = pair.flush(pair.server)
    assert isinstance(reply, ErrorReceived)
    assert (reply.code, reply.message, reply.request) == ("auth_failed", "bad signature", sent)
    assert pair.client.ready, "an ordinary error must not end the connection"


def test_result_of_the_wrong_type_is_our_bug() -> None:
    pair = ConnectionPair()
    pair.hello()
    sent = pair.client.send_request(Auth(device_id="dev1", signature="c2ln"))
    pair.flush(pair.client)
    with pytest.raises(LocalProtocolError):
        pair.server.send_result(sent.id, Empty())


def test_answering_twice_is_our_bug() -> None:
    pair = ConnectionPair()
    pair.hello()
    sent = pair.client.send_request(Heartbeat(metrics=METRICS))
    pair.flush(pair.client)
    pair.server.send_result(sent.id, Empty())
    with pytest.raises(LocalProtocolError):
        pair.server.send_result(sent.id, Empty())


def test_reply_to_unknown_request_is_fatal() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.client.receive_text('{"id":42,"type":"result","result":{}}')
    (failed,) = pair.client.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.UNEXPECTED_REPLY


def test_request_ids_must_increase() -> None:
    pair = ConnectionPair()
    pair.hello()
    hb = '{"id":%d,"type":"heartbeat","metrics":{"uptime":1,"cpu_percent":1,"memory_percent":1,"memory_used":1}}'
    pair.server.receive_text(hb % 5)
    assert isinstance(pair.server.events_received()[0], RequestReceived)
    pair.server.receive_text(hb % 5)
    (failed,) = pair.server.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.BAD_REQUEST_ID


def test_subscription_events_are_typed_and_end_with_unsubscribe() -> None:
    pair = ConnectionPair(CONSOLE_API)
    sub = pair.client.send_request(DevicesSubscribe())
    (req,) = pair.flush(pair.client)
    pair.server.send_result(req.request.id, DeviceList(devices=[]))  # type: ignore[union-attr]
    pair.flush(pair.server)
    device = DeviceSummary(
        id="d1", hostname="pc", os="Linux", group="default", online=True, last_seen=None, enrolled_at=0.0
    )
    pair.server.send_event(sub.id, DevicesChanged(kind="upsert", device=device))
    (event,) = pair.flush(pair.server)
    assert isinstance(event, EventReceived)
    assert event.request == sub and event.event == DevicesChanged(kind="upsert", device=device)
    # the wrong event type for this subscription is refused locally
    with pytest.raises(LocalProtocolError):
        pair.server.send_event(sub.id, Empty())
    unsub = pair.client.send_request(Unsubscribe(subscription=sub.id))
    pair.flush(pair.client)
    pair.server.end_subscription(sub.id)
    pair.server.send_result(unsub.id, Empty())
    pair.flush(pair.server)
    pair.client.end_subscription(sub.id)
    with pytest.raises(LocalProtocolError):
        pair.server.send_event(sub.id, DevicesChanged(kind="remove", device_id="d1"))
    # a late event for the ended subscription is dropped, not fatal
    late = {"id": sub.id, "type": "event", "event": {"kind": "remove", "device_id": "d1"}}
    pair.client.receive_text(json.dumps(late))
    assert pair.client.events_received() == []
    assert pair.client.ready


def test_frames_flow_after_hello() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.client.send_frame(Frame(FrameType.DATA, 3, b"\x00\x01payload"))
    (event,) = pair.flush(pair.client)
    assert isinstance(event, FrameReceived)
    assert event.frame == Frame(FrameType.DATA, 3, b"\x00\x01payload")


def test_frames_before_hello_are_fatal() -> None:
    pair = ConnectionPair()
    pair.server.receive_bytes(b"\x01\x00\x00\x01\x00\x00\x00\x00")
    (failed,) = pair.server.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.HELLO_REQUIRED


def test_failed_connection_ignores_input_and_refuses_output() -> None:
    pair = ConnectionPair()
    pair.server.receive_text("not json")
    (failed,) = pair.server.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.MALFORMED
    pair.server.receive_text('{"id":1,"type":"hello","versions":[1],"software":"x"}')
    assert pair.server.events_received() == []
    with pytest.raises(LocalProtocolError):
        pair.server.send_frame(Frame(FrameType.DATA, 0, b""))
    assert pair.server.fail(ErrorCode.INTERNAL, "again") is failed


def test_statistics_count_traffic() -> None:
    pair = ConnectionPair()
    pair.hello()
    stats = pair.client.statistics()
    assert stats["messages_out"] == 1 and stats["messages_in"] == 1 and stats["pending"] == 0


def test_server_may_send_requests_only_after_the_hello() -> None:
    from steun_protocol.diagnostics import DiagnosticsRun

    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError) as info:
        pair.server.send_request(DiagnosticsRun(run_id="run1"))
    assert info.value.code == ErrorCode.HELLO_REQUIRED
    pair.hello()
    sent = pair.server.send_request(DiagnosticsRun(run_id="run1"))
    (received,) = pair.flush(pair.server)
    assert isinstance(received, RequestReceived)
    assert received.request == sent


def test_server_refuses_a_server_only_request_sent_by_the_agent() -> None:
    pair = ConnectionPair()
    pair.hello()
    pair.server.receive_text(json.dumps({"id": 2, "type": "diagnostics/run", "run_id": "x"}))
    (reply,) = pair.server.data_to_send()
    assert json.loads(reply)["error"]["code"] in {ErrorCode.INVALID_MESSAGE}
