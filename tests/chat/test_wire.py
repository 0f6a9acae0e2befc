"""The chat wire format: round trips, direction of the sender, caps and control characters."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from steun_protocol.chat import (
    MAX_TEXT_BYTES,
    Message,
    Phrase,
    Read,
    Sender,
    Typing,
    clean_text,
    decode,
    decode_from_agent,
    decode_from_console,
    encode,
)
from steun_protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

TECH = [
    Message(1, Sender.TECHNICIAN, "Bonjour, ça va ? €", 1_700_000_000.25),
    Message(2, Sender.TECHNICIAN, "One moment, please.", 1.0, Phrase.ONE_MOMENT),
    Message(3, Sender.TECHNICIAN, "a newer phrase", 1.0, 9999),  # unknown ids travel (forward compatible)
    Message(4, Sender.TECHNICIAN, "line one\n\tline two", 1.0),
    Message(0xFFFFFFFF, Sender.TECHNICIAN, "é" * (MAX_TEXT_BYTES // 2), 1.0),
    Typing(Sender.TECHNICIAN, True),
    Read(Sender.TECHNICIAN, 7),
]


@pytest.mark.parametrize("message", TECH, ids=lambda m: type(m).__name__)
def test_technician_messages_round_trip(message: object) -> None:
    assert decode_from_console(encode(message)) == message  # type: ignore[arg-type]


def test_user_messages_round_trip_and_direction_is_enforced() -> None:
    message = Message(1, Sender.USER, "Ja", 5.0, Phrase.YES)
    assert decode_from_agent(encode(message)) == message
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_console(encode(message))  # the console cannot speak for the user
    assert caught.value.code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(RemoteProtocolError):
        decode_from_agent(encode(Typing(Sender.TECHNICIAN, False)))


def test_phrases_belong_to_a_side() -> None:
    assert Phrase.HELLO.sender is Sender.TECHNICIAN
    assert Phrase.YES.sender is Sender.USER


MESSAGE = struct.Struct("!BIdBHH")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.MALFORMED),
        (b"\x09", ErrorCode.UNKNOWN_TYPE),
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 5) + b"ab", ErrorCode.MALFORMED),
        (MESSAGE.pack(1, 1, 0.0, 1, 0, MAX_TEXT_BYTES + 1), ErrorCode.MESSAGE_TOO_LARGE),
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 0), ErrorCode.INVALID_MESSAGE),  # empty
        (MESSAGE.pack(1, 0, 0.0, 1, 0, 1) + b"a", ErrorCode.INVALID_MESSAGE),  # id 0
        (MESSAGE.pack(1, 1, float("nan"), 1, 0, 1) + b"a", ErrorCode.INVALID_MESSAGE),
        (MESSAGE.pack(1, 1, 0.0, 3, 0, 1) + b"a", ErrorCode.INVALID_MESSAGE),  # unknown sender
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 4) + b"\x1b[2J", ErrorCode.INVALID_MESSAGE),  # terminal escape
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 3) + b"a\x00b", ErrorCode.INVALID_MESSAGE),
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 2) + "\u009b".encode(), ErrorCode.INVALID_MESSAGE),  # C1 CSI
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 2) + b"\xc3(", ErrorCode.MALFORMED),
        (MESSAGE.pack(1, 1, 0.0, 1, 0, 1) + b"ab", ErrorCode.MALFORMED),  # trailing
        (b"\x02\x01\x02", ErrorCode.INVALID_MESSAGE),  # typing flag 2
        (b"\x03\x01\x00", ErrorCode.MALFORMED),
    ],
)
def test_hostile_input_is_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_from_console(data)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "message",
    [
        Message(1, Sender.USER, "", 0.0),
        Message(1, Sender.USER, "x" * (MAX_TEXT_BYTES + 1), 0.0),
        Message(1, Sender.USER, "bell\a", 0.0),
        Message(0, Sender.USER, "x", 0.0),
        Message(1, Sender.USER, "x", float("inf")),
    ],
)
def test_encoder_refuses_what_the_decoder_would(message: Message) -> None:
    with pytest.raises(LocalProtocolError):
        encode(message)


def test_clean_text_keeps_what_a_person_wrote() -> None:
    assert clean_text("a\r\nb\rc\x1b[31m\x00 é\t€") == "a\nb\nc[31m é\t€"


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    for decoder in (decode, decode_from_agent, decode_from_console):
        with contextlib.suppress(RemoteProtocolError):
            decoder(data)
