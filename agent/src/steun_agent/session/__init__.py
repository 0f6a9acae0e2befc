"""The agent's side of a remote-support session: the ``session/offer`` capability, the session runner
(relay, handshake, consent, channels, stop), its priority sender, and quick support (``steun-agent support``).

See docs/design/0100-agent-session-runtime.md.
"""

from __future__ import annotations

from .capability import SessionCapability
from .runner import SessionOutcome, SessionRunner, SessionSettings, relay_url
from .sender import Priority, PrioritySender

__all__ = [
    "Priority",
    "PrioritySender",
    "SessionCapability",
    "SessionOutcome",
    "SessionRunner",
    "SessionSettings",
    "relay_url",
]
