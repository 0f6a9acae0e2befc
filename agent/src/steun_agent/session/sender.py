"""The agent's one writer on the relay websocket: records leave in priority order, sealed as they leave.

Control records (consent answers, refusals, stop) go before input-channel replies (input, clipboard, shell,
chat), which go before screen data and file chunks, so a small record never waits behind a queue of screen
frames or a file transfer (ARCHITECTURE: a shared connection turned a 0.3 ms round trip into 20–90 ms).
Screen and bulk (file) records take turns when both wait, so neither a busy screen nor a 1 GiB download
starves the other. Sealing happens in the writer, at the moment a record is sent, so the
record sequence numbers increase in the order the peer receives them. Every queue is bounded; the screen
queue stays short anyway because the streamer sends only within its credit window.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from steun_protocol.frames import Frame, FrameType, encode_frame
from steun_protocol.session import RecordSealer, RecordType

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    CONTROL = 0  # CONTROL records and CLOSE
    INPUT = 1  # input / clipboard channel replies, shell and chat: anything small and interactive
    SCREEN = 2  # screen data
    BULK = 3  # file transfer chunks and replies; takes turns with SCREEN


#: Bounds per priority (records). A full control queue means the peer stopped reading: the session ends.
QUEUE_LIMITS = {Priority.CONTROL: 64, Priority.INPUT: 256, Priority.SCREEN: 32, Priority.BULK: 32}
#: Priorities whose senders wait for room (``send_waiting``) instead of failing when the queue is full.
_WAITING = (Priority.INPUT, Priority.SCREEN, Priority.BULK)


class SendQueueFull(Exception):
    """A bounded queue overflowed; the session cannot go on keeping its promises."""


@dataclass(frozen=True, slots=True)
class _Item:
    channel: int
    type: RecordType
    payload: bytes
    done: asyncio.Future[None] | None


WriteBytes = Callable[[bytes], Awaitable[None]]


class PrioritySender:
    """Queues records per priority; ``run()`` seals and writes them one at a time, highest priority first."""

    def __init__(self, sealer: RecordSealer, write: WriteBytes) -> None:
        self._sealer = sealer
        self._write = write
        self._queues: dict[Priority, collections.deque[_Item]] = {p: collections.deque() for p in Priority}
        self._ready = asyncio.Event()
        self._space = {p: asyncio.Event() for p in _WAITING}
        for event in self._space.values():
            event.set()
        self._bulk_turn = False
        self._writing: _Item | None = None
        self.closed = False
        self.sent = {p: 0 for p in Priority}

    def send_nowait(
        self, channel: int, record_type: RecordType, payload: bytes, priority: Priority = Priority.CONTROL
    ) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it was written. Raises SendQueueFull."""
        if self.closed:
            raise SendQueueFull("the sender is closed")
        queue = self._queues[priority]
        if len(queue) >= QUEUE_LIMITS[priority]:
            raise SendQueueFull(f"{priority.name.lower()} queue full ({len(queue)} records)")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(_Item(channel, record_type, payload, done))
        self._ready.set()
        return done

    async def send_screen(self, channel: int, payload: bytes) -> None:
        """For the streamer: wait for room in the (short) screen queue, then queue the record. Never drops."""
        await self.send_waiting(channel, payload, Priority.SCREEN, written=False)

    async def send_waiting(
        self, channel: int, payload: bytes, priority: Priority, *, written: bool = True
    ) -> None:
        """Wait for room in ``priority``'s queue, queue a DATA record and (``written``) wait until it was
        written: the backpressure of shell, chat and file senders. Raises SendQueueFull once closed."""
        space = self._space[priority]
        while len(self._queues[priority]) >= QUEUE_LIMITS[priority] and not self.closed:
            space.clear()
            await space.wait()
        done = self.send_nowait(channel, RecordType.DATA, payload, priority)
        if written:
            try:
                await done
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we were cancelled
                raise SendQueueFull("the record was dropped: the sender closed") from None

    def close(self) -> None:
        """Refuse new records; what is queued and not yet written is dropped (its futures cancelled, also
        the one the writer holds: its sender must not wait on a connection that may never drain)."""
        self.closed = True
        if self._writing is not None and self._writing.done is not None and not self._writing.done.done():
            self._writing.done.cancel()
        for queue in self._queues.values():
            for item in queue:
                if item.done is not None and not item.done.done():
                    item.done.cancel()
            queue.clear()
        for event in self._space.values():
            event.set()
        self._ready.set()

    async def run(self) -> None:
        """Write until cancelled or closed. A write error propagates (the session ends)."""
        while not self.closed:
            item = self._next()
            if item is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            self._writing = item
            try:
                data = self._sealer.seal(item.channel, item.type, item.payload)
                await self._write(encode_frame(Frame(FrameType.SEALED, item.channel, data)))
            except BaseException:
                if item.done is not None and not item.done.done():
                    item.done.cancel()
                raise
            finally:
                self._writing = None
            if item.done is not None and not item.done.done():
                item.done.set_result(None)

    def _next(self) -> _Item | None:
        order = list(Priority)
        if self._bulk_turn:  # screen and bulk take turns when both wait
            order[2], order[3] = Priority.BULK, Priority.SCREEN
        for priority in order:
            queue = self._queues[priority]
            if queue:
                item = queue.popleft()
                self.sent[priority] += 1
                if priority in self._space:
                    self._space[priority].set()
                if priority in (Priority.SCREEN, Priority.BULK):
                    self._bulk_turn = priority is Priority.SCREEN
                return item
        return None
