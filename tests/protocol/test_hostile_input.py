"""Malformed, oversized, deeply nested, truncated and unknown input: each gets its documented error code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from steun_protocol import ConnectionFailed, ErrorCode
from steun_protocol.codec import json_depth
from steun_protocol.control import AGENT_API

from .helpers import ConnectionPair

HEARTBEAT = {
    "id": 2,
    "type": "heartbeat",
    "metrics": {"uptime": 1, "cpu_percent": 1, "memory_percent": 1, "memory_used": 1},
}


def ready_server() -> ConnectionPair:
    pair = ConnectionPair()
    pair.hello()
    return pair


def fatal(pair: ConnectionPair, text: str | bytes) -> ConnectionFailed:
    pair.server.receive_text(text)
    events = pair.server.events_received()
    assert len(events) == 1 and isinstance(events[0], ConnectionFailed), events
    # the peer is told the same reason on connection id 0
    (told,) = pair.flush(pair.server)
    assert isinstance(told, ConnectionFailed) and told.code == events[0].code and told.by_peer
    return events[0]


def refused(pair: ConnectionPair, message: dict[str, object]) -> dict[str, object]:
    pair.server.receive_text(json.dumps(message))
    assert pair.server.events_received() == []
    (reply,) = pair.server.data_to_send()
    decoded = json.loads(reply)
    assert decoded["type"] == "error" and decoded["id"] == message["id"]
    assert pair.server.ready, "a refused request must not end the connection"
    return decoded["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json at all", ErrorCode.MALFORMED),
        ('{"id": 2, "type": "heartbeat", "metrics": {', ErrorCode.MALFORMED),  # truncated
        (b'{"id": 2, "type": "\xff\xfe"}', ErrorCode.MALFORMED),  # not UTF-8
        ("[" * 17 + "]" * 17, ErrorCode.TOO_DEEP),
        ('{"a":' * 40 + "1" + "}" * 40, ErrorCode.TOO_DEEP),
        ("[" * 100_000, ErrorCode.TOO_DEEP),
        ("[1, 2, 3]", ErrorCode.INVALID_MESSAGE),  # not an object
        ('{"type": "heartbeat"}', ErrorCode.INVALID_MESSAGE),  # no answerable id
        ('{"id": -1, "type": "nope"}', ErrorCode.UNKNOWN_TYPE),  # unknown type and no valid id
        ('{"id": "x", "type": "heartbeat"}', ErrorCode.INVALID_MESSAGE),
        ('{"id": 1, "type": "result", "result": {}}', ErrorCode.UNEXPECTED_REPLY),
    ],
)
def test_unusable_messages_end_the_connection(text: str, code: ErrorCode) -> None:
    assert fatal(ready_server(), text).code == code


def test_oversized_message_is_refused_before_decoding() -> None:
    pair = ready_server()
    failure = fatal(pair, " " * (AGENT_API.max_message_size + 1))
    assert failure.code == ErrorCode.MESSAGE_TOO_LARGE
    assert failure.close_code == 1009


def test_message_over_its_type_limit_is_refused_but_connection_survives() -> None:
    pair = ready_server()
    message = dict(HEARTBEAT)
    message["padding_in_string"] = None
    big = json.dumps(HEARTBEAT)[:-1] + ', "x": "' + "a" * 4000 + '"}'
    pair.server.receive_text(big)
    (reply,) = pair.server.data_to_send()
    assert json.loads(reply)["error"]["code"] in {ErrorCode.INVALID_MESSAGE, ErrorCode.MESSAGE_TOO_LARGE}


def test_heartbeat_limit_is_enforced_on_size() -> None:
    pair = ready_server()
    # a valid heartbeat padded with whitespace beyond its 2 KiB type limit
    text = json.dumps(HEARTBEAT).replace(", ", "," + " " * 3000, 1)
    pair.server.receive_text(text)
    (reply,) = pair.server.data_to_send()
    assert json.loads(reply)["error"]["code"] == ErrorCode.MESSAGE_TOO_LARGE
    assert pair.server.ready


def test_unknown_type_with_an_id_gets_an_error_reply() -> None:
    error = refused(ready_server(), {"id": 3, "type": "format_disk"})
    assert error["code"] == ErrorCode.UNKNOWN_TYPE


def test_unknown_field_is_refused() -> None:
    message = dict(HEARTBEAT, extra=1)
    error = refused(ready_server(), message)
    assert error["code"] == ErrorCode.INVALID_MESSAGE
    assert "extra" in str(error["message"])


def test_wrong_field_type_is_refused() -> None:
    message = {
        "id": 2,
        "type": "heartbeat",
        "metrics": {"uptime": "long", "cpu_percent": 1, "memory_percent": 1, "memory_used": 1},
    }
    assert refused(ready_server(), message)["code"] == ErrorCode.INVALID_MESSAGE


def test_out_of_range_value_is_refused() -> None:
    message = {
        "id": 2,
        "type": "heartbeat",
        "metrics": {"uptime": 1, "cpu_percent": 101, "memory_percent": 1, "memory_used": 1},
    }
    assert refused(ready_server(), message)["code"] == ErrorCode.INVALID_MESSAGE


def test_overlong_string_field_is_refused() -> None:
    message = {"id": 2, "type": "auth", "device_id": "d" * 65, "signature": "AA"}
    assert refused(ready_server(), message)["code"] == ErrorCode.INVALID_MESSAGE


def test_server_only_messages_are_not_accepted_as_requests() -> None:
    # an agent cannot pretend to be the server by sending the server's reply types as requests
    pair = ready_server()
    pair.server.receive_text('{"id": 9, "type": "event", "event": {}}')
    (failed,) = pair.server.events_received()
    assert isinstance(failed, ConnectionFailed) and failed.code == ErrorCode.UNEXPECTED_REPLY


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert json_depth(b'{"a": "\\"[[[[", "b": [[1]]}') == 3
    assert json_depth(b"1") == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512) | st.text(max_size=512))
def test_arbitrary_input_never_raises(data: bytes | str) -> None:
    pair = ready_server()
    pair.server.receive_text(data)
    pair.server.receive_bytes(data.encode() if isinstance(data, str) else data)
    for event in pair.server.events_received():
        assert event is not None
    for out in pair.server.data_to_send():
        assert json.loads(out)["type"] in {"error", "result"}


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=30,
    )
)
def test_arbitrary_json_values_never_raise(value: object) -> None:
    pair = ready_server()
    pair.server.receive_text(json.dumps(value))
    pair.server.events_received()
    pair.server.data_to_send()
