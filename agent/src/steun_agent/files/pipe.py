"""Frames between the agent and its file worker (``worker.py``): one files message or one audit event each.

Both directions use the same frame: ``length u32`` (big-endian, bytes after the tag), ``tag u8``, then the
body. ``TAG_RECORD`` carries one files-channel message exactly as it travels in a DATA record (console
messages towards the worker, agent messages back); ``TAG_EVENT`` (worker → agent only) carries one
:class:`FilesEvent` as a JSON object. A body is at most ``MAX_FRAME_BODY`` bytes — the largest files message —
and an event at most ``MAX_EVENT_BYTES``; the reader checks the length before it reads the body.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

from steun_protocol.files import MAX_MESSAGE_SIZE, MAX_PATH_BYTES

from .service import EVENT_NAMES, FilesEvent

HEADER = struct.Struct("!IB")
TAG_RECORD = 0
TAG_EVENT = 1
#: Largest frame body: one files message.
MAX_FRAME_BODY = MAX_MESSAGE_SIZE
#: Largest audit event (two paths of MAX_PATH_BYTES, escaped, and the rest).
MAX_EVENT_BYTES = 64 * 1024
_PATH_CHARS = MAX_PATH_BYTES
#: FilesEvent's fields and their annotations (strings: "int", "str", "EventName").
_EVENT_FIELDS = {f.name: str(f.type) for f in dataclasses.fields(FilesEvent)}


class PipeError(ValueError):
    """A frame from the other process broke the layout or its limits."""


def frame(tag: int, body: bytes) -> bytes:
    if len(body) > MAX_FRAME_BODY:
        raise PipeError(f"a frame body of {len(body)} bytes > {MAX_FRAME_BODY}")
    return HEADER.pack(len(body), tag) + body


def read_header(header: bytes) -> tuple[int, int]:
    """Length and tag of the next frame; refuse a length over the cap before anything is read."""
    length, tag = HEADER.unpack(header)
    if tag not in (TAG_RECORD, TAG_EVENT):
        raise PipeError(f"unknown frame tag {tag}")
    if length > (MAX_EVENT_BYTES if tag == TAG_EVENT else MAX_FRAME_BODY):
        raise PipeError(f"a frame of {length} bytes is over its limit")
    return length, tag


def encode_event(event: FilesEvent) -> bytes:
    fields = dataclasses.asdict(event)
    for key in ("path", "target"):  # a path after links may be longer than a wire path: cut it
        fields[key] = fields[key][:_PATH_CHARS]
    data = json.dumps(fields, ensure_ascii=True, allow_nan=False).encode()
    if len(data) > MAX_EVENT_BYTES:
        raise PipeError("an audit event is too large")
    return data


def decode_event(data: bytes) -> FilesEvent:
    """Strictly: a JSON object with exactly FilesEvent's fields, each of its type, a known event name."""
    try:
        fields: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise PipeError("an audit event is not JSON") from None
    if not isinstance(fields, dict) or set(fields) != set(_EVENT_FIELDS):
        raise PipeError("an audit event does not have the expected fields")
    for key, kind in _EVENT_FIELDS.items():
        value = fields[key]
        if not (_count(value) if kind == "int" else type(value) is str):
            raise PipeError(f"audit event field {key!r} has a wrong value")
    if fields["name"] not in EVENT_NAMES:
        raise PipeError(f"unknown audit event {fields['name']!r}")
    if any(len(fields[key]) > _PATH_CHARS for key in ("path", "target", "result", "sha256")):
        raise PipeError("an audit event field is too long")
    return FilesEvent(**fields)


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63
