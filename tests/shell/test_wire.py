"""The shell wire format: every message round-trips; hostile input is refused with the documented codes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from steun_protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from steun_protocol.session import MAX_RECORD_PLAINTEXT
from steun_protocol.shell import (
    MAX_COMMAND_BYTES,
    MAX_DATA_BYTES,
    MAX_ERROR_MESSAGE,
    MAX_TERM_SIDE,
    Ack,
    Close,
    Data,
    Eof,
    Error,
    Exit,
    Open,
    Opened,
    Resize,
    SendSignal,
    Signal,
    Stderr,
    decode,
    decode_from_agent,
    decode_from_console,
    encode,
)

CONSOLE = [
    Open(1, 80, 24),
    Open(65535, MAX_TERM_SIDE, 1, "vt100", "ls -l 'é ç ë €'"),
    Data(3, b"\x03"),
    Data(3, bytes(range(256)) * (MAX_DATA_BYTES // 256)),
    Ack(3, 0xFFFFFFFF),
    Resize(3, 132, 43),
    SendSignal(3, Signal.INT),
    SendSignal(3, Signal.KILL),
    Close(9),
    Eof(9),
    Open(2, 80, 24, "dumb", "tar cf - /etc", pipes=True),
]
AGENT = [
    Data(1, "é ç ë €\r\n".encode()),
    Stderr(1, b"warning\n"),
    Ack(1, 12),
    Opened(1, 4242),
    Exit(1, 3, 0),
    Exit(1, 0, Signal.INT),
    Exit(1, 0, 64),  # a signal without a name in the table still travels
    Error(1, "spawn_failed", "cannot start /bin/zsh: no such file"),
]


@pytest.mark.parametrize("message", CONSOLE, ids=lambda m: type(m).__name__)
def test_console_messages_round_trip(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert decode_from_console(data) == message
    assert len(data) <= MAX_RECORD_PLAINTEXT


@pytest.mark.parametrize("message", AGENT, ids=lambda m: type(m).__name__)
def test_agent_messages_round_trip(message: object) -> None:
    assert decode_from_agent(encode(message)) == message  # type: ignore[arg-type]


def test_layout_is_what_the_docstring_says() -> None:
    assert encode(Resize(0x0102, 80, 24)) == bytes([0x04, 0x01, 0x02, 0, 80, 0, 24])
    assert encode(Data(7, b"ab")) == bytes([0x02, 0, 7, 0, 0, 0, 2]) + b"ab"
    assert encode(Exit(7, 0, 9)) == bytes([0x82, 0, 7, 0, 9])
    assert encode(Open(1, 80, 24, "xterm", "")) == bytes([1, 0, 1, 0, 80, 0, 24, 0, 5]) + b"xterm" + b"\0\0"
    assert encode(Open(1, 80, 24, "x", "", pipes=True))[7] == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.MALFORMED),
        (b"\x7f\x00\x01", ErrorCode.UNKNOWN_TYPE),
        (b"\x02\x00", ErrorCode.MALFORMED),  # truncated shell id
        (b"\x02\x00\x01\x00\x00\x00\x05ab", ErrorCode.MALFORMED),  # data shorter than announced
        (b"\x02\x00\x01" + struct.pack("!I", MAX_DATA_BYTES + 1), ErrorCode.MESSAGE_TOO_LARGE),
        (b"\x02\x00\x01" + struct.pack("!I", 0xFFFFFFFF), ErrorCode.MESSAGE_TOO_LARGE),  # before allocating
        (b"\x02\x00\x01\x00\x00\x00\x00", ErrorCode.INVALID_MESSAGE),  # empty data
        (b"\x06\x00\x01\x00", ErrorCode.MALFORMED),  # trailing byte
        (b"\x04\x00\x01\x00\x00\x00\x18", ErrorCode.INVALID_MESSAGE),  # zero columns
        (b"\x04\x00\x01" + struct.pack("!HH", MAX_TERM_SIDE + 1, 24), ErrorCode.INVALID_MESSAGE),
        (b"\x05\x00\x01\x63", ErrorCode.INVALID_MESSAGE),  # unknown signal
        (b"\x05\x00\x01\x0b", ErrorCode.INVALID_MESSAGE),  # SEGV is not sendable
        (b"\x01\x00\x01\x00\x50\x00\x18\x00\x00\x00\x00", ErrorCode.INVALID_MESSAGE),  # empty TERM
        (b"\x01\x00\x01\x00\x50\x00\x18\x00\x03x;y\x00\x00", ErrorCode.INVALID_MESSAGE),  # TERM with ';'
        (b"\x01\x00\x01\x00\x50\x00\x18\x00\x01x\x00\x02\xc3(", ErrorCode.MALFORMED),  # command not UTF-8
        (b"\x01\x00\x01\x00\x50\x00\x18\x00\x01x\x00\x03a\x00b", ErrorCode.INVALID_MESSAGE),  # NUL in command
        (b"\x01\x00\x01\x00\x50\x00\x18\x02\x01x\x00\x00", ErrorCode.INVALID_MESSAGE),  # unknown flag
        (
            b"\x01\x00\x01\x00\x50\x00\x18\x00\x01x" + struct.pack("!H", MAX_COMMAND_BYTES + 1),
            ErrorCode.MESSAGE_TOO_LARGE,
        ),
        (b"\x81\x00\x01\x00\x00\x00\x01", ErrorCode.UNKNOWN_TYPE),  # OPENED comes from the agent only
    ],
)
def test_hostile_console_input_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_console(data)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x01\x00\x01\x00\x50\x00\x18\x00\x01x\x00\x00", ErrorCode.UNKNOWN_TYPE),  # OPEN from the agent
        (b"\x83\x00\x01\x00\x00\x00\x00", ErrorCode.INVALID_MESSAGE),  # empty stderr
        (b"\x82\x00\x01\x03\x09", ErrorCode.INVALID_MESSAGE),  # status and signal at once
        (b"\x8f\x00\x01\x00\x00\x00", ErrorCode.INVALID_MESSAGE),  # empty code
        (b"\x8f\x00\x01\x03A-b\x00\x00", ErrorCode.INVALID_MESSAGE),  # code outside [a-z_]
        (b"\x8f\x00\x01\x01x" + struct.pack("!H", MAX_ERROR_MESSAGE + 1), ErrorCode.MESSAGE_TOO_LARGE),
    ],
)
def test_hostile_agent_input_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_agent(data)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "message",
    [
        Data(1, b""),
        Data(1, b"x" * (MAX_DATA_BYTES + 1)),
        Open(1, 0, 24),
        Open(1, 80, 24, "xterm\n"),
        Open(1, 80, 24, "x" * 33),
        Open(1, 80, 24, command="x" * (MAX_COMMAND_BYTES + 1)),
        Open(70000, 80, 24),
        SendSignal(1, Signal.SEGV),
        Exit(1, 1, 9),
        Error(1, "Bad Code"),
        Ack(1, -1),
    ],
)
def test_encoder_refuses_what_the_decoder_would(message: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode(message)  # type: ignore[arg-type]


def test_long_error_messages_are_cut_on_a_character_boundary() -> None:
    decoded = decode_from_agent(encode(Error(1, "spawn_failed", "é" * MAX_ERROR_MESSAGE)))
    assert isinstance(decoded, Error)
    assert decoded.message == "é" * (MAX_ERROR_MESSAGE // 2)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    for decoder in (decode, decode_from_agent, decode_from_console):
        with contextlib.suppress(RemoteProtocolError):
            decoder(data)
