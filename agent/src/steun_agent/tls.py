"""TLS for the control plane: no CA store, only the pinned SPKI hash, checked inside the handshake.

The check runs in the ``SSLObject`` itself, right after OpenSSL finishes the handshake and before asyncio
reports the connection as made. A mismatch fails the handshake, so neither the HTTP upgrade request nor
anything else of ours is ever written to that connection (see docs/design/0020-agent-connection-trust.md).
"""

from __future__ import annotations

import ssl
from typing import ClassVar

from steun_protocol.auth import pins_equal, spki_sha256


class PinMismatchSSLError(ssl.SSLCertVerificationError):
    """Raised from the handshake; an ``ssl.SSLError`` so that asyncio fails the handshake with it."""

    def __init__(self, expected: bytes, seen: bytes | None) -> None:
        super().__init__("server certificate does not match the pinned SPKI sha256")
        self.expected = expected
        self.seen = seen


class _PinnedSSLObject(ssl.SSLObject):
    expected_spki: ClassVar[bytes] = b""

    def do_handshake(self) -> None:
        super().do_handshake()
        # Reached only once the handshake completed; no application data has been written yet.
        seen = peer_spki(self)
        if seen is None or not pins_equal(seen, self.expected_spki):
            raise PinMismatchSSLError(self.expected_spki, seen)


def peer_spki(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    """The SPKI sha256 of the certificate the peer presented, or None when there is none we can parse."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return spki_sha256(der)
    except ValueError:
        return None


def pinned_context(expected_spki: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly one server key and nothing in the system CA store."""
    if len(expected_spki) != 32:
        raise ValueError("an SPKI pin is a 32-byte sha256")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Trust comes from the pin, not from a CA: no default certificates, no host name matching.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslobject_class = type(
        "PinnedSSLObject", (_PinnedSSLObject,), {"expected_spki": bytes(expected_spki)}
    )
    return ctx
