"""Binary frames for bulk data: a type byte, flags, a channel id and a big-endian length, then the payload.

    0       1       2               4                               8
    +-------+-------+---------------+-------------------------------+----------------
    | type  | flags |  channel u16  |        length u32 (BE)        | payload ...
    +-------+-------+---------------+-------------------------------+----------------

One websocket binary message carries exactly one frame, so ``length`` must equal the bytes that follow.
The length is checked against the frame type's cap *before* anything is allocated for the payload.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .limits import MAX_FRAME_PAYLOAD

HEADER = struct.Struct("!BBHI")
HEADER_SIZE = HEADER.size


class FrameType(enum.IntEnum):
    """Registered frame types. Values are part of the protocol."""

    #: Opaque data for a channel (e.g. a relayed stream before end-to-end sealing is negotiated).
    DATA = 0x01
    #: An end-to-end sealed session record; the relay forwards it without reading it.
    SEALED = 0x02
    #: Flow-control credit for a channel: payload is a u32 count of bytes the receiver accepts more.
    CREDIT = 0x03
    #: The sender closes a channel; payload is an optional UTF-8 reason.
    CLOSE = 0x04


#: Per-type payload caps.
MAX_PAYLOAD: dict[FrameType, int] = {
    FrameType.DATA: MAX_FRAME_PAYLOAD,
    FrameType.SEALED: MAX_FRAME_PAYLOAD,
    FrameType.CREDIT: 4,
    FrameType.CLOSE: 256,
}


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    channel: int
    payload: bytes
    flags: int = 0


def encode_frame(frame: Frame) -> bytes:
    """Serialise a frame; raise LocalProtocolError for values outside the layout."""
    if not 0 <= frame.channel <= 0xFFFF:
        raise LocalProtocolError(ErrorCode.BAD_FRAME, f"channel {frame.channel} outside 0..65535")
    if not 0 <= frame.flags <= 0xFF:
        raise LocalProtocolError(ErrorCode.BAD_FRAME, f"flags {frame.flags} outside 0..255")
    cap = MAX_PAYLOAD[FrameType(frame.type)]
    if len(frame.payload) > cap:
        raise LocalProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"{frame.type.name} payload of {len(frame.payload)} bytes > {cap}"
        )
    return HEADER.pack(frame.type, frame.flags, frame.channel, len(frame.payload)) + frame.payload


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Parse one frame; raise RemoteProtocolError for anything outside the layout."""
    view = memoryview(data)
    if len(view) < HEADER_SIZE:
        raise RemoteProtocolError(
            ErrorCode.BAD_FRAME, f"frame of {len(view)} bytes is shorter than its header"
        )
    type_byte, flags, channel, length = HEADER.unpack_from(view)
    try:
        frame_type = FrameType(type_byte)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.BAD_FRAME, f"unknown frame type 0x{type_byte:02x}") from None
    cap = MAX_PAYLOAD[frame_type]
    if length > cap:
        raise RemoteProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"{frame_type.name} frame announces {length} bytes > {cap}"
        )
    if length != len(view) - HEADER_SIZE:
        raise RemoteProtocolError(
            ErrorCode.BAD_FRAME, f"frame announces {length} bytes but carries {len(view) - HEADER_SIZE}"
        )
    return Frame(frame_type, channel, bytes(view[HEADER_SIZE:]), flags)
