"""The session module's hook-up for ``create_app``: ``ROUTES`` (``/relay/ws``), ``COMMANDS`` and ``setup``."""

from __future__ import annotations

from aiohttp import web

from ..web import RouteSpec
from .commands import COMMANDS
from .relay import RELAY_PATH
from .service import SESSIONS, setup


async def relay_websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[SESSIONS].relay.handle(request)


ROUTES = [
    RouteSpec(
        method="GET",
        path=RELAY_PATH,
        handler=relay_websocket,
        public=True,  # the ticket is the credential; the console side's session is checked too
        websocket=True,
        origin="handler",  # console side: our Origin; agent side: none at all
        summary="Session relay websocket (binary frames only; ?ticket=…)",
        description="Pairs the console and the agent of one session and forwards their frames unread.",
        tags=("sessions",),
    )
]

__all__ = ["COMMANDS", "ROUTES", "setup"]
