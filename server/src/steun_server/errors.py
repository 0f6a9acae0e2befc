"""The server's exception root and the HTTP errors that carry a stable code on the wire."""

from __future__ import annotations

from typing import Any


class SteunServerError(Exception):
    """Root of every error raised by steun_server."""


class ConfigError(SteunServerError):
    """The configuration (TOML file or STEUN_* environment) holds a bad value."""


class InitError(SteunServerError):
    """The data directory cannot be initialised (for instance: it already is)."""


class StorageError(SteunServerError):
    """The database refused or could not run an operation."""


class ApiError(SteunServerError):
    """An error answered to an HTTP or websocket client as ``{"error": {"code", "message"}}``.

    ``code`` is a stable string (see ``steun_protocol.errors.ErrorCode`` and ``docs/protocol.md``);
    ``extra`` fields are added to the error object (``retry_after`` for ``throttled``).
    """

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def bad_request(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message)


def unauthorized(message: str = "sign in first", code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, message)


def forbidden(message: str = "not allowed", code: str = "forbidden") -> ApiError:
    return ApiError(403, code, message)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, code: str = "conflict") -> ApiError:
    return ApiError(409, code, message)
