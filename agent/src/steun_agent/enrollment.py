"""Enrollment: redeem a token once, prove the agent's new key, check the org's signature, store the state."""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import (
    EnrollmentToken,
    TokenFormatError,
    agent_proof_payload,
    b64decode,
    b64encode,
    enroll_proof_payload,
    public_key_bytes,
    verify,
)
from steun_protocol.control import Enroll, EnrollResult

from .backends.common import text
from .channel import ControlChannel
from .config import AgentConfig, server_base_url
from .errors import OrgKeyMismatch, StateError, TokenError
from .state import AgentState, is_enrolled

log = logging.getLogger(__name__)


def parse_token(text_token: str) -> EnrollmentToken:
    """The token as typed or pasted; ``TokenError`` with a sentence a person can act on."""
    try:
        return EnrollmentToken.parse(text_token)
    except TokenFormatError as exc:
        raise TokenError(f"the enrollment token is not usable: {exc.message}") from None


async def enroll(
    server_url: str,
    token: EnrollmentToken,
    config: AgentConfig,
    *,
    force: bool = False,
    hostname: str | None = None,
) -> AgentState:
    """Enroll this machine and store its state in ``config.state_dir``; nothing is stored on any failure."""
    state_dir: Path = config.state_dir
    base_url = server_base_url(server_url)
    if await asyncio.to_thread(is_enrolled, state_dir) and not force:
        raise StateError(
            f"this agent is already enrolled (state in {state_dir}); "
            "pass --force to replace its identity, or use another --state-dir"
        )
    key = Ed25519PrivateKey.generate()
    public_key = public_key_bytes(key)
    async with ControlChannel.connect(base_url, token.spki_sha256, config) as channel:
        nonce = await channel.hello()
        proof = agent_proof_payload(nonce, channel.spki, public_key)
        request = Enroll(
            token=b64encode(token.secret),
            public_key=b64encode(public_key),
            hostname=text(hostname or socket.gethostname()),
            os=text(f"{platform.system()} {platform.release()}".strip()),
            signature=b64encode(key.sign(proof)),
        )
        result = await channel.request(request, EnrollResult)
    try:
        org_signature = b64decode(result.org_signature, size=64)
    except ValueError:
        org_signature = b""
    if not verify(
        token.org_public_key, org_signature, enroll_proof_payload(nonce, result.device_id, public_key)
    ):
        raise OrgKeyMismatch(
            "the server's enrollment answer is not signed by the organisation key in the token; "
            "nothing was stored. The server may not be the one the token was made for."
        )
    state = AgentState(
        device_id=result.device_id,
        private_key=key,
        server_url=base_url,
        spki_sha256=token.spki_sha256,
        org_public_key=token.org_public_key,
        group=result.group,
        enrolled_at=time.time(),
    )
    await asyncio.to_thread(state.save, state_dir)
    log.info("enrolled as device %s in group %r", state.device_id, state.group)
    return state
