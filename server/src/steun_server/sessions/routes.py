"""The session module's hook-up for ``create_app``: ``ROUTES`` (``/relay/ws``, the quick-support agent's
config), ``COMMANDS`` and ``setup``."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..auth.roles import Role
from ..errors import conflict
from ..keys import b64url
from ..web import CONFIG, KEYS, RouteSpec, json_response
from .commands import COMMANDS
from .relay import RELAY_PATH
from .service import SESSIONS, setup
from .transcripts import ROUTES as TRANSCRIPT_ROUTES

#: The support-config format ``steun-agent support --config`` reads (docs/design/0100).
SUPPORT_CONFIG_VERSION = 1
SUPPORT_CONFIG_FILENAME = "steun-support.json"


class SupportAgentConfig(msgspec.Struct, kw_only=True):
    """What ``steun-agent support --config`` reads: where to connect, the TLS pin, the org key."""

    version: int
    server_url: str
    #: SHA-256 of the server's TLS SubjectPublicKeyInfo, 64 hex digits
    spki_sha256: str
    #: the org's raw 32-byte Ed25519 public key, base64url without padding
    org_public_key: str
    org_name: str


async def relay_websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[SESSIONS].relay.handle(request)


async def support_agent_config(request: web.Request) -> web.StreamResponse:
    keys = request.app[KEYS]
    config = request.app[CONFIG]
    if len(keys.spki_sha256) != 32:
        raise conflict(
            "the server has no TLS certificate to pin; configure tls_cert before offering quick support",
            code="no_tls",
        )
    body = SupportAgentConfig(
        version=SUPPORT_CONFIG_VERSION,
        server_url=config.effective_public_url,
        spki_sha256=keys.spki_sha256.hex(),
        org_public_key=b64url(keys.org_public_key),
        org_name=config.org_name,
    )
    return json_response(
        body,
        headers={
            "Content-Disposition": f'attachment; filename="{SUPPORT_CONFIG_FILENAME}"',
            "Cache-Control": "no-store",
        },
    )


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
    ),
    RouteSpec(
        method="GET",
        path="/api/support/agent-config",
        handler=support_agent_config,
        permission=Role.TECHNICIAN,
        response=SupportAgentConfig,
        errors=(409,),
        summary="Download the quick-support agent's config (steun-agent support --config FILE)",
        description=(
            "A JSON attachment (steun-support.json) with the server's public URL, its TLS SPKI pin and the "
            "org's public key. 409 when the server has no TLS certificate to pin."
        ),
        tags=("sessions",),
    ),
    *TRANSCRIPT_ROUTES,
]

__all__ = ["COMMANDS", "ROUTES", "SupportAgentConfig", "setup"]
