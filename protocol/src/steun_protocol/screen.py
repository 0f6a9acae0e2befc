"""Wire format of the screen, input, cursor and clipboard messages that travel inside session DATA records.

Each ``RecordType.DATA`` record on a screen or input channel carries exactly one message. Every field is
fixed-width and big-endian, so a browser reads it with one ``DataView``; variable parts (encoded pixels, text,
cursor pixels, monitor names) come last, behind an explicit length that is checked against a cap *before*
anything is allocated. A message must be consumed exactly: trailing bytes are refused.

All messages start with ``type u8``; the table gives the fields that follow it, in order.

Agent → console
===============

====  ===============  =================================================================================
type  name             fields after the type byte
====  ===============  =================================================================================
0x01  MONITORS         count u8 (1..16); per monitor: id u8, flags u8 (bit 0 primary, bit 1 selected),
                       x i32, y i32, width u16, height u16, name_len u8 (≤ 64), name UTF-8
0x02  FRAME_BEGIN      seq u32, monitor u8, flags u8 (bit 0 full refresh), width u16, height u16,
                       capture_ms u32 (agent clock)
0x03  REGION           seq u32, x u16, y u16, width u16, height u16, encoding u8, flags u8 (bit 0
                       reset, ZSTD_STREAM_BGRA only), length u32 (≤ MAX_REGION_BYTES), data
0x04  FRAME_END        seq u32, regions u16, bytes u32 (sum of this frame's REGION data lengths)
0x05  CURSOR_POSITION  x i32, y i32 (relative to the streamed monitor), visible u8
0x06  CURSOR_SHAPE     serial u32, width u16, height u16 (1..256), hot_x u16, hot_y u16,
                       RGBA pixels (width × height × 4 bytes, straight alpha)
0x07  CLIPBOARD        length u32 (≤ MAX_CLIPBOARD_BYTES), UTF-8 text (both directions)
====  ===============  =================================================================================

Console → agent
===============

====  ===============  =================================================================================
0x07  CLIPBOARD        as above
0x41  ACK              seq u32, received_ms u32 (console clock, diagnostics), render_ms u16
0x42  CONFIGURE        quality u8 (0 adaptive, 1..100 fixed JPEG quality), max_fps u8 (0 default, ≤ 60),
                       encodings u16 (bit 1 << Encoding the console decodes), max_in_flight u8 (1..8)
0x43  SELECT_MONITOR   monitor u8 (an id from MONITORS)
0x44  REFRESH          (nothing): send the whole monitor again
0x50  POINTER_MOVE     x u16, y u16 (relative to the streamed monitor)
0x51  POINTER_BUTTON   button u8 (1 left, 2 middle, 3 right, 8 back, 9 forward), down u8, x u16, y u16
0x52  WHEEL            dx i16, dy i16 (1/120 notch, positive = right/down, like WHEEL_DELTA)
0x53  KEY              keysym u32 (X11 keysym, as RFB and noVNC use), down u8 (0/1)
0x54  TEXT             length u16 (≤ MAX_TEXT_BYTES), UTF-8 text to type (characters, not keys)
0x55  RELEASE_ALL      (nothing): release every key and button this session holds (focus lost)
====  ===============  =================================================================================

Region encodings (``Encoding``): pixels are rows top to bottom, no padding.

* ``JPEG`` (1) — baseline JPEG; decode with ``createImageBitmap``.
* ``ZSTD_BGRA`` (2) — one zstd frame of B, G, R, X bytes per pixel (X is ignored; paint alpha 255).
* ``DEFLATE_BGRA`` (3) — the same pixels as one zlib stream (``DecompressionStream("deflate")``).
* ``SOLID`` (4) — 4 bytes B, G, R, X: fill the whole region with that colour.
* ``ZSTD_STREAM_BGRA`` (5) — the same pixels as the next flushed block(s) of *one zstd stream* that runs
  through all ZSTD_STREAM_BGRA regions of the screen stream, so a region may copy pixels sent earlier
  (scrolling, moved windows). Keep one decoder (window ≤ 8 MiB); the ``reset`` flag means "start a new
  decoder before this region".

Every lossless region decodes to exactly width × height × 4 bytes: a console must stop and fail on more.
A REGION's ``seq`` is the seq of the FRAME_BEGIN before it; regions of one frame never overlap.

A console announces what it decodes in CONFIGURE; ``JPEG``, ``DEFLATE_BGRA`` and ``SOLID`` are mandatory
(every browser has them natively), the zstd ones are opt-in. The console acknowledges each frame after
painting its FRAME_END; an ACK covers that frame and every earlier one. The agent keeps at most
``max_in_flight`` unacknowledged frames, and sends nothing at all while the screen does not change.

Errors are ``RemoteProtocolError`` with these codes: ``malformed`` (empty, truncated, trailing bytes,
bad UTF-8), ``message_too_large`` (a length above its cap), ``unknown_type`` (type byte not in the table,
or not sent in that direction), ``invalid_message`` (a value out of range: zero size, unknown encoding,
a flag that is not 0/1...).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .binary import Reader, flag, invalid, message_type
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .session import MAX_RECORD_PLAINTEXT

# --------------------------------------------------------------------------------------------- limits

#: Most monitors one MONITORS message lists.
MAX_MONITORS = 16
#: Longest monitor name (UTF-8 bytes).
MAX_MONITOR_NAME = 64
#: Largest encoded region: a REGION message (header included) always fits in one session record.
REGION_HEADER_SIZE = 1 + 18
MAX_REGION_BYTES = MAX_RECORD_PLAINTEXT - REGION_HEADER_SIZE
#: Largest cursor side in pixels (RGBA, so at most 256 KiB of pixels).
MAX_CURSOR_SIDE = 256
#: Largest clipboard text (UTF-8 bytes).
MAX_CLIPBOARD_BYTES = 512 * 1024
#: Largest TEXT input message (UTF-8 bytes).
MAX_TEXT_BYTES = 1024
#: Largest frame side; also bounds coordinates.
MAX_SIDE = 16384
#: The most frames a console may let the agent keep unacknowledged.
MAX_IN_FLIGHT = 8
MAX_FPS = 60


class Encoding(enum.IntEnum):
    """How a REGION's bytes encode its pixels. Values are part of the protocol."""

    JPEG = 1
    ZSTD_BGRA = 2
    DEFLATE_BGRA = 3
    SOLID = 4
    ZSTD_STREAM_BGRA = 5

    @property
    def bit(self) -> int:
        return 1 << self.value


#: Encodings every console must decode (native in every browser).
MANDATORY_ENCODINGS = Encoding.JPEG.bit | Encoding.DEFLATE_BGRA.bit | Encoding.SOLID.bit
ALL_ENCODINGS = MANDATORY_ENCODINGS | Encoding.ZSTD_BGRA.bit | Encoding.ZSTD_STREAM_BGRA.bit


class MessageType(enum.IntEnum):
    MONITORS = 0x01
    FRAME_BEGIN = 0x02
    REGION = 0x03
    FRAME_END = 0x04
    CURSOR_POSITION = 0x05
    CURSOR_SHAPE = 0x06
    CLIPBOARD = 0x07
    ACK = 0x41
    CONFIGURE = 0x42
    SELECT_MONITOR = 0x43
    REFRESH = 0x44
    POINTER_MOVE = 0x50
    POINTER_BUTTON = 0x51
    WHEEL = 0x52
    KEY = 0x53
    TEXT = 0x54
    RELEASE_ALL = 0x55


class PointerButton(enum.IntEnum):
    LEFT = 1
    MIDDLE = 2
    RIGHT = 3
    BACK = 8
    FORWARD = 9


# --------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    id: int
    x: int
    y: int
    width: int
    height: int
    name: str = ""
    primary: bool = False
    selected: bool = False


@dataclass(frozen=True, slots=True)
class Monitors:
    monitors: tuple[MonitorInfo, ...]
    type: ClassVar[MessageType] = MessageType.MONITORS


@dataclass(frozen=True, slots=True)
class FrameBegin:
    seq: int
    monitor: int
    width: int
    height: int
    capture_ms: int
    full: bool = False
    type: ClassVar[MessageType] = MessageType.FRAME_BEGIN


@dataclass(frozen=True, slots=True)
class Region:
    seq: int
    x: int
    y: int
    width: int
    height: int
    encoding: Encoding
    data: bytes
    reset: bool = False  # ZSTD_STREAM_BGRA: start a new zstd stream with this region
    type: ClassVar[MessageType] = MessageType.REGION


@dataclass(frozen=True, slots=True)
class FrameEnd:
    seq: int
    regions: int
    bytes: int
    type: ClassVar[MessageType] = MessageType.FRAME_END


@dataclass(frozen=True, slots=True)
class CursorPosition:
    x: int
    y: int
    visible: bool = True
    type: ClassVar[MessageType] = MessageType.CURSOR_POSITION


@dataclass(frozen=True, slots=True)
class CursorShape:
    serial: int
    width: int
    height: int
    hot_x: int
    hot_y: int
    rgba: bytes
    type: ClassVar[MessageType] = MessageType.CURSOR_SHAPE


@dataclass(frozen=True, slots=True)
class Clipboard:
    text: str
    type: ClassVar[MessageType] = MessageType.CLIPBOARD


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    received_ms: int = 0
    render_ms: int = 0
    type: ClassVar[MessageType] = MessageType.ACK


@dataclass(frozen=True, slots=True)
class Configure:
    quality: int = 0
    max_fps: int = 0
    encodings: int = MANDATORY_ENCODINGS
    max_in_flight: int = 2
    type: ClassVar[MessageType] = MessageType.CONFIGURE


@dataclass(frozen=True, slots=True)
class SelectMonitor:
    monitor: int
    type: ClassVar[MessageType] = MessageType.SELECT_MONITOR


@dataclass(frozen=True, slots=True)
class Refresh:
    type: ClassVar[MessageType] = MessageType.REFRESH


@dataclass(frozen=True, slots=True)
class PointerMove:
    x: int
    y: int
    type: ClassVar[MessageType] = MessageType.POINTER_MOVE


@dataclass(frozen=True, slots=True)
class PointerButtonEvent:
    button: PointerButton
    down: bool
    x: int
    y: int
    type: ClassVar[MessageType] = MessageType.POINTER_BUTTON


@dataclass(frozen=True, slots=True)
class Wheel:
    dx: int
    dy: int
    type: ClassVar[MessageType] = MessageType.WHEEL


@dataclass(frozen=True, slots=True)
class Key:
    keysym: int
    down: bool
    type: ClassVar[MessageType] = MessageType.KEY


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    type: ClassVar[MessageType] = MessageType.TEXT


@dataclass(frozen=True, slots=True)
class ReleaseAll:
    type: ClassVar[MessageType] = MessageType.RELEASE_ALL


AgentMessage: TypeAlias = Monitors | FrameBegin | Region | FrameEnd | CursorPosition | CursorShape | Clipboard
InputMessage: TypeAlias = PointerMove | PointerButtonEvent | Wheel | Key | Text | ReleaseAll
ConsoleMessage: TypeAlias = Ack | Configure | SelectMonitor | Refresh | Clipboard | InputMessage
ScreenMessage: TypeAlias = AgentMessage | ConsoleMessage

AGENT_TYPES = frozenset(
    {
        MessageType.MONITORS,
        MessageType.FRAME_BEGIN,
        MessageType.REGION,
        MessageType.FRAME_END,
        MessageType.CURSOR_POSITION,
        MessageType.CURSOR_SHAPE,
        MessageType.CLIPBOARD,
    }
)
CONSOLE_TYPES = frozenset(MessageType) - AGENT_TYPES | {MessageType.CLIPBOARD}
#: Console messages that are input (handled by the input task, never behind screen work).
INPUT_TYPES = frozenset(
    {
        MessageType.POINTER_MOVE,
        MessageType.POINTER_BUTTON,
        MessageType.WHEEL,
        MessageType.KEY,
        MessageType.TEXT,
        MessageType.RELEASE_ALL,
    }
)

# --------------------------------------------------------------------------------------------- layouts

_MONITOR = struct.Struct("!BBiiHHB")
_FRAME_BEGIN = struct.Struct("!IBBHHI")
_REGION = struct.Struct("!IHHHHBBI")
_FRAME_END = struct.Struct("!IHI")
_CURSOR_POSITION = struct.Struct("!iiB")
_CURSOR_SHAPE = struct.Struct("!IHHHH")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_ACK = struct.Struct("!IIH")
_CONFIGURE = struct.Struct("!BBHB")
_U8 = struct.Struct("!B")
_POINT = struct.Struct("!HH")
_BUTTON = struct.Struct("!BBHH")
_WHEEL = struct.Struct("!hh")
_KEY = struct.Struct("!IB")

assert 1 + _REGION.size == REGION_HEADER_SIZE

U32_MAX = 0xFFFFFFFF


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, what)


def encode(message: ScreenMessage) -> bytes:
    """Serialise one message; raise LocalProtocolError for values outside the layout or its caps."""
    t = bytes((message.type,))
    try:
        match message:
            case Monitors(monitors):
                _check(1 <= len(monitors) <= MAX_MONITORS, f"{len(monitors)} monitors")
                parts = [t, _U8.pack(len(monitors))]
                for m in monitors:
                    name = m.name.encode()[:MAX_MONITOR_NAME].decode("utf-8", "ignore").encode()
                    _check(_size_ok(m.width, m.height), f"monitor {m.width}x{m.height}")
                    flags = int(m.primary) | int(m.selected) << 1
                    parts += [_MONITOR.pack(m.id, flags, m.x, m.y, m.width, m.height, len(name)), name]
                return b"".join(parts)
            case FrameBegin(seq, monitor, width, height, capture_ms, full):
                _check(_size_ok(width, height), f"frame {width}x{height}")
                return t + _FRAME_BEGIN.pack(seq, monitor, int(full), width, height, capture_ms & U32_MAX)
            case Region(seq, x, y, width, height, encoding, data, reset):
                _check(_size_ok(width, height) and x + width <= MAX_SIDE and y + height <= MAX_SIDE, "region")
                _check(not reset or encoding == Encoding.ZSTD_STREAM_BGRA, "only a zstd stream resets")
                if len(data) > MAX_REGION_BYTES:
                    raise LocalProtocolError(
                        ErrorCode.MESSAGE_TOO_LARGE, f"region of {len(data)} bytes > {MAX_REGION_BYTES}"
                    )
                head = _REGION.pack(seq, x, y, width, height, Encoding(encoding), int(reset), len(data))
                return b"".join((t, head, data))
            case FrameEnd(seq, regions, nbytes):
                return t + _FRAME_END.pack(seq, regions, nbytes)
            case CursorPosition(x, y, visible):
                return t + _CURSOR_POSITION.pack(x, y, int(visible))
            case CursorShape(serial, width, height, hot_x, hot_y, rgba):
                _check(1 <= width <= MAX_CURSOR_SIDE and 1 <= height <= MAX_CURSOR_SIDE, "cursor size")
                _check(len(rgba) == width * height * 4, "cursor pixels do not match its size")
                _check(hot_x < width and hot_y < height, "cursor hotspot outside the cursor")
                return t + _CURSOR_SHAPE.pack(serial, width, height, hot_x, hot_y) + rgba
            case Clipboard(text):
                data = text.encode()
                if len(data) > MAX_CLIPBOARD_BYTES:
                    raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"clipboard of {len(data)} bytes")
                return t + _U32.pack(len(data)) + data
            case Ack(seq, received_ms, render_ms):
                return t + _ACK.pack(seq, received_ms & U32_MAX, min(render_ms, 0xFFFF))
            case Configure(quality, max_fps, encodings, max_in_flight):
                _check(0 <= quality <= 100 and 0 <= max_fps <= MAX_FPS, "quality or fps")
                _check(1 <= max_in_flight <= MAX_IN_FLIGHT, "max_in_flight")
                return t + _CONFIGURE.pack(quality, max_fps, encodings, max_in_flight)
            case SelectMonitor(monitor):
                return t + _U8.pack(monitor)
            case Refresh() | ReleaseAll():
                return t
            case PointerMove(x, y):
                return t + _POINT.pack(x, y)
            case PointerButtonEvent(button, down, x, y):
                return t + _BUTTON.pack(PointerButton(button), int(down), x, y)
            case Wheel(dx, dy):
                return t + _WHEEL.pack(dx, dy)
            case Key(keysym, down):
                return t + _KEY.pack(keysym, int(down))
            case Text(text):
                data = text.encode()
                if len(data) > MAX_TEXT_BYTES:
                    raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"text of {len(data)} bytes")
                return t + _U16.pack(len(data)) + data
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, f"{type(message).__name__}: {exc}") from None
    raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"not a screen message: {message!r}")


def _size_ok(width: int, height: int) -> bool:
    return 1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE


# --------------------------------------------------------------------------------------------- decoding


def decode(
    data: bytes | bytearray | memoryview, *, allowed: frozenset[MessageType] | None = None
) -> ScreenMessage:
    """Parse one message; ``allowed`` restricts the types (see ``decode_from_agent``/``_console``)."""
    view, kind = message_type(data, MessageType, allowed, "screen")
    r = Reader(view)
    message = _DECODERS[kind](r)
    r.end()
    return message


def decode_from_agent(data: bytes | bytearray | memoryview) -> AgentMessage:
    """What a console accepts."""
    return decode(data, allowed=AGENT_TYPES)  # type: ignore[return-value]


def decode_from_console(data: bytes | bytearray | memoryview) -> ConsoleMessage:
    """What an agent accepts."""
    return decode(data, allowed=CONSOLE_TYPES)  # type: ignore[return-value]


def _monitors(r: Reader) -> Monitors:
    (count,) = r.fields(_U8)
    invalid(1 <= count <= MAX_MONITORS, f"{count} monitors")
    out = []
    for _ in range(count):
        mid, flags, x, y, width, height, name_len = r.fields(_MONITOR)
        invalid(_size_ok(width, height) and flags < 4, "monitor")
        name = r.text(name_len, MAX_MONITOR_NAME, "monitor name")
        out.append(MonitorInfo(mid, x, y, width, height, name, bool(flags & 1), bool(flags & 2)))
    return Monitors(tuple(out))


def _frame_begin(r: Reader) -> FrameBegin:
    seq, monitor, flags, width, height, capture_ms = r.fields(_FRAME_BEGIN)
    invalid(_size_ok(width, height), f"frame {width}x{height}")
    return FrameBegin(seq, monitor, width, height, capture_ms, flag(flags, "frame flags"))


def _encoding(value: int) -> Encoding:
    try:
        return Encoding(value)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown encoding {value}") from None


def _region(r: Reader) -> Region:
    seq, x, y, width, height, encoding, flags, length = r.fields(_REGION)
    invalid(_size_ok(width, height) and x + width <= MAX_SIDE and y + height <= MAX_SIDE, "region size")
    enc = _encoding(encoding)
    invalid(flags == 0 or (flags == 1 and enc is Encoding.ZSTD_STREAM_BGRA), f"region flags {flags}")
    invalid(enc is not Encoding.SOLID or length == 4, "a SOLID region carries 4 bytes")
    data = r.raw(length, MAX_REGION_BYTES, "region data")
    return Region(seq, x, y, width, height, enc, data, reset=bool(flags))


def _frame_end(r: Reader) -> FrameEnd:
    return FrameEnd(*r.fields(_FRAME_END))


def _cursor_position(r: Reader) -> CursorPosition:
    x, y, visible = r.fields(_CURSOR_POSITION)
    return CursorPosition(x, y, flag(visible, "visible"))


def _cursor_shape(r: Reader) -> CursorShape:
    serial, width, height, hot_x, hot_y = r.fields(_CURSOR_SHAPE)
    invalid(1 <= width <= MAX_CURSOR_SIDE and 1 <= height <= MAX_CURSOR_SIDE, f"cursor {width}x{height}")
    invalid(hot_x < width and hot_y < height, "cursor hotspot outside the cursor")
    rgba = r.raw(width * height * 4, MAX_CURSOR_SIDE * MAX_CURSOR_SIDE * 4, "cursor pixels")
    return CursorShape(serial, width, height, hot_x, hot_y, rgba)


def _clipboard(r: Reader) -> Clipboard:
    (length,) = r.fields(_U32)
    return Clipboard(r.text(length, MAX_CLIPBOARD_BYTES, "clipboard"))


def _ack(r: Reader) -> Ack:
    return Ack(*r.fields(_ACK))


def _configure(r: Reader) -> Configure:
    quality, max_fps, encodings, max_in_flight = r.fields(_CONFIGURE)
    invalid(quality <= 100 and max_fps <= MAX_FPS, "quality or fps out of range")
    invalid(1 <= max_in_flight <= MAX_IN_FLIGHT, f"max_in_flight {max_in_flight}")
    invalid(encodings & ~ALL_ENCODINGS == 0, f"unknown encodings in mask 0x{encodings:04x}")
    return Configure(quality, max_fps, encodings, max_in_flight)


def _select_monitor(r: Reader) -> SelectMonitor:
    return SelectMonitor(*r.fields(_U8))


def _pointer_move(r: Reader) -> PointerMove:
    x, y = r.fields(_POINT)
    invalid(x < MAX_SIDE and y < MAX_SIDE, "pointer outside any screen")
    return PointerMove(x, y)


def _pointer_button(r: Reader) -> PointerButtonEvent:
    button, down, x, y = r.fields(_BUTTON)
    try:
        which = PointerButton(button)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown button {button}") from None
    invalid(x < MAX_SIDE and y < MAX_SIDE, "pointer outside any screen")
    return PointerButtonEvent(which, flag(down, "down"), x, y)


def _wheel(r: Reader) -> Wheel:
    return Wheel(*r.fields(_WHEEL))


def _key(r: Reader) -> Key:
    keysym, down = r.fields(_KEY)
    invalid(0 < keysym <= 0x1FFFFFFF, f"keysym 0x{keysym:x}")
    return Key(keysym, flag(down, "down"))


def _text(r: Reader) -> Text:
    (length,) = r.fields(_U16)
    return Text(r.text(length, MAX_TEXT_BYTES, "text"))


_DECODERS: dict[MessageType, Callable[[Reader], ScreenMessage]] = {
    MessageType.MONITORS: _monitors,
    MessageType.FRAME_BEGIN: _frame_begin,
    MessageType.REGION: _region,
    MessageType.FRAME_END: _frame_end,
    MessageType.CURSOR_POSITION: _cursor_position,
    MessageType.CURSOR_SHAPE: _cursor_shape,
    MessageType.CLIPBOARD: _clipboard,
    MessageType.ACK: _ack,
    MessageType.CONFIGURE: _configure,
    MessageType.SELECT_MONITOR: _select_monitor,
    MessageType.REFRESH: lambda r: Refresh(),
    MessageType.POINTER_MOVE: _pointer_move,
    MessageType.POINTER_BUTTON: _pointer_button,
    MessageType.WHEEL: _wheel,
    MessageType.KEY: _key,
    MessageType.TEXT: _text,
    MessageType.RELEASE_ALL: lambda r: ReleaseAll(),
}
