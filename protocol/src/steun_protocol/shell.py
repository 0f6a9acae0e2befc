"""Wire format of the remote shell channel (``Channel.SHELL``): open, terminal bytes, resize, signals, exit.

Each ``RecordType.DATA`` record on the shell channel carries exactly one message. As in ``screen.py``, every
field is fixed-width and big-endian (one ``DataView`` reads it), variable parts come last behind a length
that is checked against its cap *before* anything is allocated, and trailing bytes are refused.

One session may run several shells at once; the console picks a ``shell`` id (u16) per OPEN and every later
message names it. An id may be reused once the shell's EXIT (or ERROR) has arrived.

All messages start with ``type u8, shell u16``; the table gives the fields that follow.

Console → agent
===============

====  =========  ====================================================================================
type  name       fields after ``type u8, shell u16``
====  =========  ====================================================================================
0x01  OPEN       cols u16, rows u16 (1..MAX_TERM_SIDE), flags u8 (bit 0 ``PIPES``: no terminal —
                 stdin, stdout and stderr are pipes, as ``ssh host command`` without ``-t``),
                 term_len u8 (1..MAX_TERM_NAME), term ASCII ``[A-Za-z0-9._+-]``, command_len u16
                 (≤ MAX_COMMAND_BYTES), command UTF-8 — an empty command means "the account's login
                 shell"; otherwise ``$SHELL -c command``
0x02  DATA       length u32 (1..MAX_DATA_BYTES), bytes for the terminal (keys, pastes)
0x03  ACK        bytes u32: the console has consumed this much output; the agent may send as much more
0x04  RESIZE     cols u16, rows u16 (1..MAX_TERM_SIDE)
0x05  SIGNAL     signal u8 (a ``Signal`` in ``SENDABLE_SIGNALS``), to the terminal's foreground group
0x06  CLOSE      (nothing): hang the shell up and end every process of its terminal session
0x07  EOF        (nothing): no more input — PIPES: stdin is closed once the queued input is written;
                 with a terminal it means nothing (a terminal's end of input is the key Ctrl-D)
====  =========  ====================================================================================

Agent → console
===============

====  =========  ====================================================================================
0x02  DATA       as above: the terminal's output (PIPES: standard output)
0x83  STDERR     length u32 (1..MAX_DATA_BYTES), standard error (PIPES only); shares DATA's window
0x03  ACK        as above: the agent has written this much input into the terminal
0x81  OPENED     pid u32 (informational)
0x82  EXIT       status u8, signal u8: ``signal`` 0 means the shell exited with ``status``; otherwise
                 it was ended by that signal (Linux numbering, see ``Signal``) and ``status`` is 0
0x8F  ERROR      code_len u8 (1..32), code ASCII ``[a-z_]`` (``ShellErrorCode``), message_len u16
                 (≤ MAX_ERROR_MESSAGE), message UTF-8. After an ERROR the shell id is free again,
                 except for ``flow_violation`` on a running shell, which also ends it.
====  =========  ====================================================================================

Flow control (both directions): each side may have at most ``WINDOW`` bytes of DATA that the other side has
not acknowledged, starting from OPEN. The receiver acknowledges what it has *consumed* (the agent: written
into the terminal; the console: painted by the terminal emulator), so a slow reader stops the writer instead
of growing a queue. On the agent, a full window means it stops reading the terminal, and the programs in it
block on their next write, exactly as on a slow serial line.

Errors from the decoders are ``RemoteProtocolError`` with these codes: ``malformed`` (empty, truncated,
trailing bytes, bad UTF-8), ``message_too_large`` (a length above its cap), ``unknown_type`` (type byte not
in the table or not sent in that direction), ``invalid_message`` (a value out of range).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from .binary import Reader, invalid, message_type
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError

# --------------------------------------------------------------------------------------------- limits

#: Largest DATA payload (bytes) in one message.
MAX_DATA_BYTES = 64 * 1024
#: Unacknowledged DATA bytes allowed per shell and direction.
WINDOW = 256 * 1024
#: Largest terminal side in character cells.
MAX_TERM_SIDE = 4096
#: Longest TERM name (``xterm-256color``...).
MAX_TERM_NAME = 32
#: Longest command (UTF-8 bytes).
MAX_COMMAND_BYTES = 4096
#: Longest error message (UTF-8 bytes).
MAX_ERROR_MESSAGE = 1024
#: Longest error code (ASCII).
MAX_ERROR_CODE = 32
#: Shells one session may run at once.
MAX_SHELLS = 8

_TERM = re.compile(r"[A-Za-z0-9._+-]+")
_CODE = re.compile(r"[a-z_]+")


class MessageType(enum.IntEnum):
    OPEN = 0x01
    DATA = 0x02
    ACK = 0x03
    RESIZE = 0x04
    SIGNAL = 0x05
    CLOSE = 0x06
    EOF = 0x07
    OPENED = 0x81
    EXIT = 0x82
    STDERR = 0x83
    ERROR = 0x8F


class Signal(enum.IntEnum):
    """Signals by their Linux numbers; the agent maps them to its platform's by name."""

    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    BUS = 7
    FPE = 8
    KILL = 9
    USR1 = 10
    SEGV = 11
    USR2 = 12
    PIPE = 13
    ALRM = 14
    TERM = 15
    CONT = 18
    STOP = 19
    TSTP = 20
    WINCH = 28


#: What a console may ask the agent to send.
SENDABLE_SIGNALS = frozenset(
    {
        Signal.HUP,
        Signal.INT,
        Signal.QUIT,
        Signal.KILL,
        Signal.USR1,
        Signal.USR2,
        Signal.TERM,
        Signal.CONT,
        Signal.STOP,
        Signal.TSTP,
        Signal.WINCH,
    }
)


class ShellErrorCode(enum.StrEnum):
    """Stable codes of shell ERROR messages. Never rename one."""

    SHELL_EXISTS = "shell_exists"  # OPEN for an id that is still running
    NO_SUCH_SHELL = "no_such_shell"  # a message for an id that is not running
    TOO_MANY_SHELLS = "too_many_shells"  # more than MAX_SHELLS at once
    SPAWN_FAILED = "spawn_failed"  # the shell or command could not be started
    ACCOUNT_UNAVAILABLE = "account_unavailable"  # the account to run as does not exist or cannot be used
    FLOW_VIOLATION = "flow_violation"  # more DATA than the window allows
    CLOSED = "closed"  # the service is stopping (session Stop)


# --------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Open:
    shell: int
    cols: int
    rows: int
    term: str = "xterm-256color"
    command: str = ""
    pipes: bool = False
    type: ClassVar[MessageType] = MessageType.OPEN


@dataclass(frozen=True, slots=True)
class Data:
    shell: int
    data: bytes
    type: ClassVar[MessageType] = MessageType.DATA


@dataclass(frozen=True, slots=True)
class Ack:
    shell: int
    nbytes: int
    type: ClassVar[MessageType] = MessageType.ACK


@dataclass(frozen=True, slots=True)
class Resize:
    shell: int
    cols: int
    rows: int
    type: ClassVar[MessageType] = MessageType.RESIZE


@dataclass(frozen=True, slots=True)
class SendSignal:
    shell: int
    signal: Signal
    type: ClassVar[MessageType] = MessageType.SIGNAL


@dataclass(frozen=True, slots=True)
class Close:
    shell: int
    type: ClassVar[MessageType] = MessageType.CLOSE


@dataclass(frozen=True, slots=True)
class Eof:
    shell: int
    type: ClassVar[MessageType] = MessageType.EOF


@dataclass(frozen=True, slots=True)
class Stderr:
    shell: int
    data: bytes
    type: ClassVar[MessageType] = MessageType.STDERR


@dataclass(frozen=True, slots=True)
class Opened:
    shell: int
    pid: int
    type: ClassVar[MessageType] = MessageType.OPENED


@dataclass(frozen=True, slots=True)
class Exit:
    shell: int
    status: int = 0
    signal: int = 0  # 0: exited with status; else the (Linux-numbered) signal that ended it
    type: ClassVar[MessageType] = MessageType.EXIT


@dataclass(frozen=True, slots=True)
class Error:
    shell: int
    code: str
    message: str = ""
    type: ClassVar[MessageType] = MessageType.ERROR


ConsoleMessage: TypeAlias = Open | Data | Ack | Resize | SendSignal | Close | Eof
AgentMessage: TypeAlias = Data | Stderr | Ack | Opened | Exit | Error
ShellMessage: TypeAlias = ConsoleMessage | AgentMessage

CONSOLE_TYPES = frozenset(
    {
        MessageType.OPEN,
        MessageType.DATA,
        MessageType.ACK,
        MessageType.RESIZE,
        MessageType.SIGNAL,
        MessageType.CLOSE,
        MessageType.EOF,
    }
)
AGENT_TYPES = frozenset(
    {
        MessageType.DATA,
        MessageType.STDERR,
        MessageType.ACK,
        MessageType.OPENED,
        MessageType.EXIT,
        MessageType.ERROR,
    }
)
#: Flags of OPEN.
PIPES = 0x01

# --------------------------------------------------------------------------------------------- layouts

_HEAD = struct.Struct("!BH")
_OPEN = struct.Struct("!HHBB")
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_SIZE = struct.Struct("!HH")
_EXIT = struct.Struct("!BB")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, what)


def _too_large(length: int, cap: int, what: str) -> None:
    if length > cap:
        raise LocalProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"{what} of {length} bytes > {cap}")


def _side_ok(cols: int, rows: int) -> bool:
    return 1 <= cols <= MAX_TERM_SIDE and 1 <= rows <= MAX_TERM_SIDE


def encode(message: ShellMessage) -> bytes:
    """Serialise one message; raise LocalProtocolError for values outside the layout or its caps."""
    try:
        head = _HEAD.pack(message.type, message.shell)
        match message:
            case Open(_, cols, rows, term, command, pipes):
                _check(_side_ok(cols, rows), f"terminal {cols}x{rows}")
                _check(len(term) <= MAX_TERM_NAME and bool(_TERM.fullmatch(term)), f"TERM {term!r}")
                cmd = command.encode()
                _too_large(len(cmd), MAX_COMMAND_BYTES, "command")
                fixed = _OPEN.pack(cols, rows, PIPES if pipes else 0, len(term))
                return b"".join((head, fixed, term.encode(), _U16.pack(len(cmd)), cmd))
            case Data(_, data) | Stderr(_, data):
                _check(len(data) > 0, "empty DATA")
                _too_large(len(data), MAX_DATA_BYTES, "shell data")
                return b"".join((head, _U32.pack(len(data)), data))
            case Ack(_, nbytes):
                return head + _U32.pack(nbytes)
            case Resize(_, cols, rows):
                _check(_side_ok(cols, rows), f"terminal {cols}x{rows}")
                return head + _SIZE.pack(cols, rows)
            case SendSignal(_, sig):
                _check(Signal(sig) in SENDABLE_SIGNALS, f"signal {sig} cannot be sent")
                return head + _U8.pack(sig)
            case Close() | Eof():
                return head
            case Opened(_, pid):
                return head + _U32.pack(pid)
            case Exit(_, status, sig):
                _check(sig == 0 or status == 0, "a shell ended by a signal has no status")
                return head + _EXIT.pack(status, sig)
            case Error(_, code, text):
                _check(valid_code(code), f"error code {code!r}")
                msg = truncate_utf8(text, MAX_ERROR_MESSAGE)
                return b"".join((head, _U8.pack(len(code)), code.encode(), _U16.pack(len(msg)), msg))
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(ErrorCode.INVALID_MESSAGE, f"{type(message).__name__}: {exc}") from None
    raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"not a shell message: {message!r}")


def valid_code(code: str) -> bool:
    """An error code on the wire: 1..MAX_ERROR_CODE characters of ``[a-z_]``."""
    return 1 <= len(code) <= MAX_ERROR_CODE and bool(_CODE.fullmatch(code))


def truncate_utf8(text: str, cap: int) -> bytes:
    """``text`` as UTF-8, cut to at most ``cap`` bytes on a character boundary (for human messages)."""
    return text.encode()[:cap].decode("utf-8", "ignore").encode()


# --------------------------------------------------------------------------------------------- decoding


def decode(
    data: bytes | bytearray | memoryview, *, allowed: frozenset[MessageType] | None = None
) -> ShellMessage:
    """Parse one message; ``allowed`` restricts the types (see ``decode_from_agent``/``_console``)."""
    view, kind = message_type(data, MessageType, allowed, "shell")
    r = Reader(view)
    (shell,) = r.fields(_U16)
    message = _DECODERS[kind](r, shell)
    r.end()
    return message


def decode_from_agent(data: bytes | bytearray | memoryview) -> AgentMessage:
    """What a console accepts."""
    return decode(data, allowed=AGENT_TYPES)  # type: ignore[return-value]


def decode_from_console(data: bytes | bytearray | memoryview) -> ConsoleMessage:
    """What an agent accepts."""
    return decode(data, allowed=CONSOLE_TYPES)  # type: ignore[return-value]


def _open(r: Reader, shell: int) -> Open:
    cols, rows, flags, term_len = r.fields(_OPEN)
    invalid(_side_ok(cols, rows), f"terminal {cols}x{rows}")
    invalid(flags & ~PIPES == 0, f"unknown OPEN flags 0x{flags:02x}")
    invalid(term_len >= 1, "empty TERM")
    term = r.text(term_len, MAX_TERM_NAME, "TERM")
    invalid(bool(_TERM.fullmatch(term)), "TERM has characters outside [A-Za-z0-9._+-]")
    (cmd_len,) = r.fields(_U16)
    command = r.text(cmd_len, MAX_COMMAND_BYTES, "command")
    invalid("\0" not in command, "command contains NUL")
    return Open(shell, cols, rows, term, command, bool(flags & PIPES))


def _data(r: Reader, shell: int) -> Data:
    (length,) = r.fields(_U32)
    invalid(length > 0, "empty DATA")
    return Data(shell, r.raw(length, MAX_DATA_BYTES, "shell data"))


def _stderr(r: Reader, shell: int) -> Stderr:
    (length,) = r.fields(_U32)
    invalid(length > 0, "empty STDERR")
    return Stderr(shell, r.raw(length, MAX_DATA_BYTES, "shell stderr"))


def _ack(r: Reader, shell: int) -> Ack:
    (nbytes,) = r.fields(_U32)
    return Ack(shell, nbytes)


def _resize(r: Reader, shell: int) -> Resize:
    cols, rows = r.fields(_SIZE)
    invalid(_side_ok(cols, rows), f"terminal {cols}x{rows}")
    return Resize(shell, cols, rows)


def _signal(r: Reader, shell: int) -> SendSignal:
    (value,) = r.fields(_U8)
    try:
        sig = Signal(value)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown signal {value}") from None
    invalid(sig in SENDABLE_SIGNALS, f"signal {sig.name} cannot be sent")
    return SendSignal(shell, sig)


def _opened(r: Reader, shell: int) -> Opened:
    (pid,) = r.fields(_U32)
    return Opened(shell, pid)


def _exit(r: Reader, shell: int) -> Exit:
    status, sig = r.fields(_EXIT)
    invalid(sig == 0 or status == 0, "a shell ended by a signal has no status")
    return Exit(shell, status, sig)


def _error(r: Reader, shell: int) -> Error:
    (code_len,) = r.fields(_U8)
    invalid(code_len >= 1, "empty error code")
    code = r.text(code_len, MAX_ERROR_CODE, "error code")
    invalid(valid_code(code), "error code has characters outside [a-z_]")
    (msg_len,) = r.fields(_U16)
    return Error(shell, code, r.text(msg_len, MAX_ERROR_MESSAGE, "error message"))


_DECODERS: dict[MessageType, Callable[[Reader, int], ShellMessage]] = {
    MessageType.OPEN: _open,
    MessageType.DATA: _data,
    MessageType.ACK: _ack,
    MessageType.RESIZE: _resize,
    MessageType.SIGNAL: _signal,
    MessageType.CLOSE: lambda r, shell: Close(shell),
    MessageType.EOF: lambda r, shell: Eof(shell),
    MessageType.STDERR: _stderr,
    MessageType.OPENED: _opened,
    MessageType.EXIT: _exit,
    MessageType.ERROR: _error,
}
