"""The screen wire format: every message round-trips; hostile input is refused with the documented codes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from steun_protocol.errors import LocalProtocolError, RemoteProtocolError
from steun_protocol.screen import (
    ALL_ENCODINGS,
    MAX_CLIPBOARD_BYTES,
    MAX_REGION_BYTES,
    MAX_TEXT_BYTES,
    Ack,
    Clipboard,
    Configure,
    CursorPosition,
    CursorShape,
    Encoding,
    FrameBegin,
    FrameEnd,
    Key,
    MessageType,
    MonitorInfo,
    Monitors,
    PointerButton,
    PointerButtonEvent,
    PointerMove,
    Refresh,
    Region,
    ReleaseAll,
    SelectMonitor,
    Text,
    Wheel,
    decode,
    decode_from_agent,
    decode_from_console,
    encode,
)
from steun_protocol.session import MAX_RECORD_PLAINTEXT

AGENT = [
    Monitors(
        (
            MonitorInfo(1, 0, 0, 1920, 1080, "HDMI-1", primary=True, selected=True),
            MonitorInfo(2, -1280, 0, 1280, 1024, "DP-1"),
        )
    ),
    FrameBegin(7, 1, 1920, 1080, 123456, full=True),
    Region(7, 64, 128, 640, 384, Encoding.ZSTD_BGRA, b"\x28\xb5\x2f\xfd" + b"x" * 100),
    Region(7, 0, 0, 1, 1, Encoding.SOLID, b"\x01\x02\x03\x00"),
    Region(8, 0, 0, 4, 4, Encoding.ZSTD_STREAM_BGRA, b"z", reset=True),
    Region(8, 0, 0, 4, 4, Encoding.ZSTD_STREAM_BGRA, b"z"),
    FrameEnd(7, 2, 108),
    CursorPosition(-5, 1200, visible=False),
    CursorShape(42, 2, 1, 1, 0, bytes(range(8))),
    Clipboard("héllo € wörld"),
]
CONSOLE = [
    Ack(7, 99, 12),
    Configure(quality=60, max_fps=20, encodings=ALL_ENCODINGS, max_in_flight=3),
    SelectMonitor(2),
    Refresh(),
    PointerMove(1919, 1079),
    PointerButtonEvent(PointerButton.RIGHT, True, 10, 20),
    Wheel(-120, 240),
    Key(0xFF0D, True),
    Text("é ç ë €"),
    ReleaseAll(),
    Clipboard("x"),
]


@pytest.mark.parametrize("message", AGENT + CONSOLE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message) -> None:
    data = encode(message)
    assert decode(data) == message
    assert data[0] == message.type


@pytest.mark.parametrize("message", AGENT, ids=lambda m: type(m).__name__)
def test_console_refuses_agent_only_types_from_the_agent_direction(message) -> None:
    if message.type == MessageType.CLIPBOARD:
        return
    assert decode_from_agent(encode(message)) == message
    with pytest.raises(RemoteProtocolError) as err:
        decode_from_console(encode(message))
    assert err.value.code == "unknown_type"


@pytest.mark.parametrize("message", CONSOLE, ids=lambda m: type(m).__name__)
def test_agent_refuses_console_types_in_the_other_direction(message) -> None:
    if message.type == MessageType.CLIPBOARD:
        return
    with pytest.raises(RemoteProtocolError) as err:
        decode_from_agent(encode(message))
    assert err.value.code == "unknown_type"


@pytest.mark.parametrize("message", AGENT + CONSOLE, ids=lambda m: type(m).__name__)
def test_every_truncation_is_malformed(message) -> None:
    data = encode(message)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError) as err:
            decode(data[:cut])
        assert err.value.code == "malformed", (cut, err.value)


@pytest.mark.parametrize("message", AGENT + CONSOLE, ids=lambda m: type(m).__name__)
def test_trailing_bytes_are_malformed(message) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode(encode(message) + b"\0")
    assert err.value.code == "malformed"


def test_unknown_type_byte() -> None:
    for byte in (0x00, 0x08, 0x40, 0x56, 0xFF):
        with pytest.raises(RemoteProtocolError) as err:
            decode(bytes([byte]) + b"\0" * 16)
        assert err.value.code == "unknown_type"


def test_oversized_lengths_are_refused_before_reading() -> None:
    region = struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 1, 0, MAX_REGION_BYTES + 1)
    clipboard = struct.pack("!BI", 0x07, MAX_CLIPBOARD_BYTES + 1)
    text = struct.pack("!BH", 0x54, MAX_TEXT_BYTES + 1)
    huge = struct.pack("!BI", 0x07, 0xFFFFFFFF)
    for data in (region, clipboard, text, huge):
        with pytest.raises(RemoteProtocolError) as err:
            decode(data)
        assert err.value.code == "message_too_large"


def test_a_maximal_region_fits_in_one_session_record() -> None:
    data = encode(Region(1, 0, 0, 16, 16, Encoding.JPEG, b"j" * MAX_REGION_BYTES))
    assert len(data) == MAX_RECORD_PLAINTEXT
    with pytest.raises(LocalProtocolError) as err:
        encode(Region(1, 0, 0, 16, 16, Encoding.JPEG, b"j" * (MAX_REGION_BYTES + 1)))
    assert err.value.code == "message_too_large"


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 0, 10, 1, 0, 0),  # zero width
        struct.pack("!BIHHHHBBI", 0x03, 1, 16000, 0, 1000, 10, 1, 0, 0),  # beyond the largest side
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 9, 0, 0),  # unknown encoding
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 1, 2, 0),  # unknown flag
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 1, 1, 0),  # reset on a JPEG region
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 2, 1, 0),  # reset on a stand-alone zstd frame
        struct.pack("!BIHHHHBBI", 0x03, 1, 0, 0, 10, 10, 4, 0, 3) + b"abc",  # SOLID of 3 bytes
        struct.pack("!BIBBHHI", 0x02, 1, 1, 2, 100, 100, 0),  # frame flags 2
        struct.pack("!BIHHHH", 0x06, 1, 300, 1, 0, 0),  # cursor too wide
        struct.pack("!BIHHHH", 0x06, 1, 2, 2, 2, 0) + b"\0" * 16,  # hotspot outside
        struct.pack("!BBBHB", 0x42, 101, 30, 0, 2),  # quality 101
        struct.pack("!BBBHB", 0x42, 50, 30, 0, 0),  # no frames in flight
        struct.pack("!BBBHB", 0x42, 50, 30, 0x8000, 2),  # unknown encoding bit
        struct.pack("!BBBHH", 0x51, 4, 1, 0, 0),  # button 4 (wheel is its own message)
        struct.pack("!BBBHH", 0x51, 1, 2, 0, 0),  # down = 2
        struct.pack("!BIB", 0x53, 0, 1),  # keysym 0
        struct.pack("!BB", 0x01, 0),  # no monitors
        struct.pack("!BB", 0x01, 17),  # too many monitors
    ],
)
def test_values_out_of_range_are_invalid(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode(data)
    assert err.value.code == "invalid_message"


def test_bad_utf8_is_malformed() -> None:
    for data in (struct.pack("!BH", 0x54, 2) + b"\xc3\x28", struct.pack("!BI", 0x07, 1) + b"\xff"):
        with pytest.raises(RemoteProtocolError) as err:
            decode(data)
        assert err.value.code == "malformed"


def test_empty_message_is_malformed() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        decode(b"")
    assert err.value.code == "malformed"


def test_encoder_refuses_what_the_decoder_would() -> None:
    for message in (
        Text("x" * (MAX_TEXT_BYTES + 1)),
        Clipboard("x" * (MAX_CLIPBOARD_BYTES + 1)),
        Configure(max_in_flight=0),
        CursorShape(1, 2, 2, 0, 0, b"short"),
        FrameBegin(1, 1, 0, 10, 0),
        PointerMove(-1, 0),
    ):
        with pytest.raises(LocalProtocolError):
            encode(message)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_escapes_as_anything_but_a_protocol_error(data: bytes) -> None:
    code = None
    try:
        decode(data)
    except RemoteProtocolError as exc:
        code = exc.code
    assert code in {None, "malformed", "message_too_large", "unknown_type", "invalid_message"}


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(MessageType)), st.binary(max_size=40))
def test_garbage_after_a_valid_type_byte(kind: MessageType, body: bytes) -> None:
    try:
        message = decode(bytes([kind]) + body)
    except RemoteProtocolError as exc:
        code = exc.code
    else:
        code = None
        assert encode(message) == bytes([kind]) + body  # whatever decodes is canonical
    assert code in {None, "malformed", "message_too_large", "invalid_message"}


def test_the_protocol_module_stays_pure() -> None:
    import ast
    import pathlib

    import steun_protocol.screen as screen

    tree = ast.parse(pathlib.Path(screen.__file__).read_text())
    imported = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)}
    imported |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module
    }
    assert imported <= {"__future__", "enum", "struct", "collections", "dataclasses", "typing"}
