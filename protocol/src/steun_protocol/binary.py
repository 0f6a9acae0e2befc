"""Bounded reading of the binary channel messages (screen, shell, files, chat): one cursor, one type check."""

from __future__ import annotations

import enum
import struct
from typing import TypeVar

from .errors import ErrorCode, RemoteProtocolError

K = TypeVar("K", bound=enum.IntEnum)


class Reader:
    """A bounded cursor over one binary channel message; every read checks what is left first.

    ``start`` skips what the caller already parsed (by default the type byte).
    """

    __slots__ = ("_pos", "_view")

    def __init__(self, view: memoryview, start: int = 1) -> None:
        self._view = view
        self._pos = start

    def fields(self, layout: struct.Struct) -> tuple[int, ...]:
        if len(self._view) - self._pos < layout.size:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "message is truncated")
        values = layout.unpack_from(self._view, self._pos)
        self._pos += layout.size
        return values

    def raw(self, length: int, cap: int, what: str) -> bytes:
        if length > cap:
            raise RemoteProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"{what} of {length} bytes > {cap}")
        if len(self._view) - self._pos < length:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is truncated")
        data = bytes(self._view[self._pos : self._pos + length])
        self._pos += length
        return data

    def text(self, length: int, cap: int, what: str) -> str:
        try:
            return self.raw(length, cap, what).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{what} is not UTF-8") from None

    def end(self) -> None:
        if self._pos != len(self._view):
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"{len(self._view) - self._pos} trailing bytes")


def invalid(ok: bool, what: str) -> None:
    """Refuse a value out of range (``invalid_message``)."""
    if not ok:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, what)


def flag(value: int, what: str) -> bool:
    invalid(value in (0, 1), f"{what} must be 0 or 1")
    return bool(value)


def message_type(
    data: bytes | bytearray | memoryview, types: type[K], allowed: frozenset[K] | None, family: str
) -> tuple[memoryview, K]:
    """The message's view and its type byte, refused when empty, unknown or not sent in this direction."""
    view = memoryview(data)
    if len(view) == 0:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "empty message")
    try:
        kind = types(view[0])
    except ValueError:
        raise RemoteProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown {family} message 0x{view[0]:02x}"
        ) from None
    if allowed is not None and kind not in allowed:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"{kind.name} is not sent in this direction")
    return view, kind
