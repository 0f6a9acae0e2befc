"""Bounded JSON decoding: size and depth are checked before a typed decode."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from .errors import ErrorCode, RemoteProtocolError
from .limits import MAX_JSON_DEPTH, MAX_TEXT_MESSAGE

T = TypeVar("T")

# A JSON string literal, escapes included; what is left after removing them is structure and scalars.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")

_encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Encode a message or payload as compact JSON."""
    return _encoder.encode(value)


def as_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    """The UTF-8 bytes of a received text message; invalid UTF-8 is a malformed message."""
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "text message is not valid UTF-8") from None
    raw = bytes(data)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "text message is not valid UTF-8") from None
    return raw


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in a JSON text (strings ignored).

    Runs in linear time with two regular expressions, so it is cheap next to decoding and cannot recurse.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def check_bounds(data: bytes, *, max_size: int = MAX_TEXT_MESSAGE, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise RemoteProtocolError when a JSON text is too large or too deeply nested."""
    if len(data) > max_size:
        raise RemoteProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE, f"message of {len(data)} bytes exceeds the limit of {max_size}"
        )
    depth = json_depth(data)
    if depth > max_depth:
        raise RemoteProtocolError(
            ErrorCode.TOO_DEEP, f"nesting depth {depth} exceeds the limit of {max_depth}"
        )


def decode(data: bytes, type: type[T], *, max_size: int = MAX_TEXT_MESSAGE) -> T:
    """Decode a bounded JSON text into ``type``, translating msgspec's errors into protocol errors."""
    check_bounds(data, max_size=max_size)
    try:
        return msgspec.json.decode(data, type=type, strict=True)
    except msgspec.ValidationError as exc:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"not valid JSON: {exc}") from None
