"""The agent's exceptions: one root, each with the exit code the command line reports it with."""

from __future__ import annotations

from steun_protocol import ErrorCode

#: Exit codes of ``steun-agent``. They are stable: installers and scripts test them.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STATE = 3
EXIT_TRUST = 4
EXIT_REFUSED = 5
EXIT_UNREACHABLE = 6


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(AgentError):
    """The command line or the environment asks for something that cannot work (our side's mistake)."""

    exit_code = EXIT_USAGE


class TokenError(ConfigError):
    """The enrollment token given on the command line cannot be parsed."""


class StateError(AgentError):
    """The state directory is missing, incomplete, damaged or readable by others."""

    exit_code = EXIT_STATE


class TrustError(AgentError):
    """The server is not the one the agent was told to trust. Fatal: never retried, never overridden."""

    exit_code = EXIT_TRUST


class PinMismatch(TrustError):
    """The server's TLS key does not match the pinned SPKI hash."""

    def __init__(self, expected: bytes, seen: bytes | None) -> None:
        self.expected = expected
        self.seen = seen
        shown = seen.hex() if seen is not None else "no usable certificate"
        super().__init__(
            "the server's TLS key does not match the pinned key "
            f"(expected SPKI sha256 {expected.hex()}, the server presented {shown}). "
            "Nothing was sent to it. Either this is not your Steun server (someone may be intercepting the "
            "connection), or the server's key was replaced: then enroll again with a new token."
        )


class OrgKeyMismatch(TrustError):
    """The server's enrollment answer is not signed by the organisation key from the token."""


class ConnectionLost(AgentError):
    """The connection to the server failed or closed; worth trying again later."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        #: The websocket close code the server sent, when it sent one.
        self.close_code = close_code


class ServerRefused(AgentError):
    """The server answered a request with an error code."""

    exit_code = EXIT_REFUSED

    def __init__(self, code: str, message: str, *, what: str = "request") -> None:
        self.code = code
        self.server_message = message
        super().__init__(f"{explain(code, what)} (server error {code}{': ' + message if message else ''})")

    @property
    def fatal(self) -> bool:
        """True when trying again cannot help without an operator (the device was revoked)."""
        return self.code == ErrorCode.DEVICE_REVOKED


_SENTENCES: dict[str, str] = {
    ErrorCode.TOKEN_USED: "This enrollment token has already been used; ask your administrator for another.",
    ErrorCode.TOKEN_EXPIRED: "This enrollment token has expired; ask your administrator for another.",
    ErrorCode.TOKEN_INVALID: "The server does not know this enrollment token; check it was copied whole, "
    "or ask your administrator for a new one.",
    ErrorCode.DEVICE_REVOKED: "This device was revoked by an administrator; it will not connect again. "
    "Enroll it anew with a fresh token if that was a mistake.",
    ErrorCode.AUTH_FAILED: "The server did not accept this device's identity (it may have been deleted "
    "on the server, or the server's database was replaced).",
    ErrorCode.UNSUPPORTED_VERSION: "The server and this agent share no protocol version; update the agent.",
    ErrorCode.THROTTLED: "The server is asking the agent to slow down.",
    ErrorCode.OVERLOADED: "The server is overloaded.",
    ErrorCode.INTERNAL: "The server failed while handling the request.",
}


def explain(code: str, what: str = "request") -> str:
    """A human sentence for a wire error code."""
    return _SENTENCES.get(code, f"The server refused the {what}.")
