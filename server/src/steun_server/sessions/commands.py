"""Console commands for remote sessions: ``support/create``, ``session/request``, ``session/stop``."""

from __future__ import annotations

from steun_protocol.messages import Empty
from steun_protocol.sessionplane import (
    SessionCreated,
    SessionExtend,
    SessionExtended,
    SessionRequest,
    SessionStop,
    SupportCodeCreate,
    SupportCodeCreated,
    SupportCodeEvent,
)

from ..auth.roles import Role
from ..auth.service import client_address
from ..wsapi import CommandSpec, ConsoleConnection
from .service import SESSIONS


async def support_create(
    conn: ConsoleConnection, msg_id: int, params: SupportCodeCreate
) -> SupportCodeCreated:
    service = conn.app[SESSIONS]

    def notify(event: SupportCodeEvent) -> None:
        conn.send_event(msg_id, event)

    code, expires_at, key = await service.create_code(conn.user, notify, source=client_address(conn.request))
    # no await between making the code and tying it to this subscription: unsubscribing (Cancel in the
    # console, or the socket closing) withdraws a code nobody waits for any more
    conn.subscribe(msg_id, lambda: service.codes.withdraw(key))
    return SupportCodeCreated(code=code, expires_at=expires_at)


async def session_request(conn: ConsoleConnection, msg_id: int, params: SessionRequest) -> SessionCreated:
    service = conn.app[SESSIONS]
    return await service.request_session(conn.user, params, source=client_address(conn.request))


async def session_extend(conn: ConsoleConnection, msg_id: int, params: SessionExtend) -> SessionExtended:
    service = conn.app[SESSIONS]
    return await service.extend_session(conn.user, params, source=client_address(conn.request))


async def session_stop(conn: ConsoleConnection, msg_id: int, params: SessionStop) -> Empty:
    service = conn.app[SESSIONS]
    await service.stop_session(conn.user, params.session_id, source=client_address(conn.request))
    return Empty()


COMMANDS = [
    CommandSpec(
        type="support/create",
        handler=support_create,
        params=SupportCodeCreate,
        permission=Role.TECHNICIAN,
        summary="A 9-digit quick-support code (10 minutes, single use); events: redeemed, expired",
    ),
    CommandSpec(
        type="session/request",
        handler=session_request,
        params=SessionRequest,
        permission=Role.TECHNICIAN,
        summary="Ask an online device for a session: a signed offer, the relay path and the console's ticket",
    ),
    CommandSpec(
        type="session/extend",
        handler=session_extend,
        params=SessionExtend,
        permission=Role.TECHNICIAN,
        summary="Re-sign a live session's offer with more capabilities (its technician or an admin)",
    ),
    CommandSpec(
        type="session/stop",
        handler=session_stop,
        params=SessionStop,
        permission=Role.TECHNICIAN,
        summary="End a session (its technician or an admin): closes both sides on the relay",
    ),
]
