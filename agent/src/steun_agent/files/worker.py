"""The file worker: one session's FilesService in a process of its own, acting as the account it was given.

An installed service agent runs as root; the files capability must read and write with the permissions of
the account the local policy names, no more. :class:`~.proxy.FilesProxy` starts this module —
``python -I -m steun_agent.files.worker --root PATH --uid N --gid N --groups N,N`` — with a cleared
environment, umask 022 and no descriptors but its three pipes. Before it reads a byte of input it drops to
the account (``setgroups``, ``setresgid``, ``setresuid``, in that order) and checks that root cannot be
regained; then it serves frames (``pipe.py``): records on stdin go to ``FilesService.feed``, what the service
sends goes to stdout as record frames (the pipe's backpressure pauses it), its audit events as event frames.
End of stdin is Stop: ``close_all`` and exit.

Why the worker drops its own privileges instead of being started as the account (``Popen(user=...)``): the
interpreter and its library may lie where that account cannot read (a Python under ``/root``, an unpacked
one-file build in a private directory). The worker loads all its code as root — the same code the root agent
already runs — and drops before it touches any input; every module it needs later is imported up front.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures.thread  # noqa: F401 - run_in_executor imports it lazily; after the drop it may be unreadable
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from steun_protocol.errors import RemoteProtocolError

from .pipe import HEADER, TAG_EVENT, TAG_RECORD, PipeError, encode_event, frame, read_header
from .service import FilesEvent, FilesService

log = logging.getLogger("steun_agent.files.worker")

#: Exit statuses the proxy reports.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DROP_FAILED = 3
#: At most this long to hand over what is still buffered when input ends (the agent waits 0.5 s).
FLUSH_TIME = 0.3


class DropError(RuntimeError):
    """The process could not become the account, or could become root again."""


def drop_privileges(uid: int, gid: int, groups: Sequence[int]) -> None:
    """Become ``uid``/``gid`` with ``groups`` for good (real, effective and saved ids), then verify it."""
    if os.geteuid() != 0:
        if (os.getuid(), os.getgid()) == (uid, gid):
            return  # already the account (a test, or an agent started as that account)
        raise DropError(f"uid {os.geteuid()} cannot become uid {uid}")
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise DropError("the ids did not change")
    if set(os.getgroups()) - set(groups) - {gid}:
        raise DropError("supplementary groups are left")
    if uid != 0:
        try:
            os.setresuid(0, 0, 0)
        except PermissionError:
            return
        raise DropError("root could be regained")


async def serve(root: str, stdin: int = 0, stdout: int = 1) -> int:
    """Serve frames on ``stdin``/``stdout`` until end of input; return the exit status."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdin, "rb", 0, closefd=False)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(stdout, "wb", 0, closefd=False)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    lock = asyncio.Lock()

    async def send(payload: bytes) -> None:
        async with lock:
            writer.write(frame(TAG_RECORD, payload))
            await writer.drain()

    def on_event(event: FilesEvent) -> None:
        # Small and one per finished request: written without waiting (the transport buffers it).
        writer.write(frame(TAG_EVENT, encode_event(event)))

    service = FilesService(send, root, on_event=on_event)
    status = EXIT_OK
    try:
        while True:
            try:
                header = await reader.readexactly(HEADER.size)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.error("the agent's frame was cut short")
                    status = EXIT_BAD_INPUT
                break
            length, tag = read_header(header)
            body = await reader.readexactly(length)
            if tag != TAG_RECORD:
                raise PipeError("the agent sends records only")
            service.feed(body)
    except (PipeError, RemoteProtocolError, asyncio.IncompleteReadError) as exc:
        # The agent checks every record before it forwards it: this is a bug, not the console.
        log.error("bad input from the agent: %s", exc)
        status = EXIT_BAD_INPUT
    finally:
        await service.close_all()
        # The last audit events ("closed") are on their way: give the agent a moment to read them.
        transport.set_write_buffer_limits(high=0)  # drain now waits until the buffer is empty
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.drain(), FLUSH_TIME)
        transport.close()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steun_agent.files.worker", description=__doc__)
    parser.add_argument("--root", required=True, help="the directory served")
    parser.add_argument("--uid", type=int, default=os.getuid())
    parser.add_argument("--gid", type=int, default=os.getgid())
    parser.add_argument("--groups", default="", help="supplementary group ids, comma-separated")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="files worker: %(message)s")
    try:
        groups = [int(g) for g in args.groups.split(",") if g]
        drop_privileges(args.uid, args.gid, groups)
    except (DropError, OSError, ValueError) as exc:
        log.error("cannot act as uid %s: %s", args.uid, exc)
        return EXIT_DROP_FAILED
    return asyncio.run(serve(args.root))


if __name__ == "__main__":
    sys.exit(main())
