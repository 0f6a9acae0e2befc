"""Binary frame layout: round trip, caps checked before allocation, truncation, unknown types."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from steun_protocol import ErrorCode, LocalProtocolError, RemoteProtocolError
from steun_protocol.frames import HEADER_SIZE, MAX_PAYLOAD, Frame, FrameType, decode_frame, encode_frame


@given(
    st.sampled_from([FrameType.DATA, FrameType.SEALED]),
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.binary(max_size=2048),
)
def test_round_trip(kind: FrameType, channel: int, flags: int, payload: bytes) -> None:
    frame = Frame(kind, channel, payload, flags)
    data = encode_frame(frame)
    assert len(data) == HEADER_SIZE + len(payload)
    assert decode_frame(data) == frame


def test_layout_is_big_endian() -> None:
    data = encode_frame(Frame(FrameType.SEALED, 0x0102, b"xyz", 0x80))
    assert data[:8] == bytes([0x02, 0x80, 0x01, 0x02, 0, 0, 0, 3])


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_FRAME),
        (b"\x01\x00\x00", ErrorCode.BAD_FRAME),  # shorter than the header
        (b"\x7f\x00\x00\x00\x00\x00\x00\x00", ErrorCode.BAD_FRAME),  # unknown type
        (b"\x01\x00\x00\x00\x00\x00\x00\x05abc", ErrorCode.BAD_FRAME),  # truncated payload
        (b"\x01\x00\x00\x00\x00\x00\x00\x01abc", ErrorCode.BAD_FRAME),  # trailing bytes
        (struct.pack("!BBHI", 1, 0, 0, 0xFFFFFFFF), ErrorCode.MESSAGE_TOO_LARGE),  # huge announced length
        (struct.pack("!BBHI", 3, 0, 0, 5) + b"12345", ErrorCode.MESSAGE_TOO_LARGE),  # credit is 4 bytes max
    ],
)
def test_bad_frames_are_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(data)
    assert info.value.code == code


def test_encoding_refuses_out_of_range_values() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(Frame(FrameType.DATA, 70000, b""))
    with pytest.raises(LocalProtocolError):
        encode_frame(Frame(FrameType.DATA, 0, b"", 256))
    with pytest.raises(LocalProtocolError):
        encode_frame(Frame(FrameType.DATA, 0, b"x" * (MAX_PAYLOAD[FrameType.DATA] + 1)))
