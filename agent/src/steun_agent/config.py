"""Agent settings: where the state lives, how it talks to the server, and the timings of its loops."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ENV_STATE_DIR = "STEUN_AGENT_STATE_DIR"
SYSTEM_STATE_DIR = Path("/var/lib/steun-agent")
AGENT_PATH = "/agent/ws"

#: Settings that may be changed from the environment (``STEUN_AGENT_<NAME>``), mostly for tests.
_ENV_FLOATS = (
    "backoff_base",
    "backoff_cap",
    "stable_after",
    "inventory_interval",
    "request_timeout",
    "open_timeout",
    "ping_interval",
    "ping_timeout",
)


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$STEUN_AGENT_STATE_DIR``, else /var/lib/steun-agent for root, else the user's XDG data directory."""
    env = os.environ if environ is None else environ
    if env.get(ENV_STATE_DIR):
        return Path(env[ENV_STATE_DIR])
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    data_home = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "steun-agent"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the runtime needs besides its state. Defaults suit production."""

    state_dir: Path = dataclasses.field(default_factory=default_state_dir)
    #: Reconnect backoff (full jitter): first delay drawn from [0, base], doubling up to ``cap``.
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    #: A connection that stayed up this long resets the backoff.
    stable_after: float = 60.0
    #: How often the inventory is collected again (it is sent only when its digest changed).
    inventory_interval: float = 60.0
    #: How long any request waits for its reply before the connection is treated as dead.
    request_timeout: float = 30.0
    #: TCP + TLS + websocket handshake.
    open_timeout: float = 15.0
    close_timeout: float = 5.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    #: Largest message accepted from the server (our largest reply is tiny; 1 MiB leaves room).
    max_size: int = 1024 * 1024
    #: Messages buffered from the server before reading pauses.
    max_queue: int = 16

    def __post_init__(self) -> None:
        for name in _ENV_FLOATS:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_cap must not be below backoff_base")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: object) -> AgentConfig:
        """Defaults, then ``STEUN_AGENT_*`` variables, then explicit ``overrides`` (None values ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"state_dir": default_state_dir(env)}
        for name in _ENV_FLOATS:
            raw = env.get("STEUN_AGENT_" + name.upper())
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ConfigError(f"STEUN_AGENT_{name.upper()} must be a number, not {raw!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def server_base_url(url: str) -> str:
    """Normalise what an admin typed (``https://host:port``, ``wss://host/agent/ws``) to ``https://host:port``.

    Plain ``http``/``ws`` are refused: the agent never talks to its server without TLS.
    """
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("https", "wss"):
        raise ConfigError(f"the server URL must start with https:// (got {url!r})")
    if not parsed.hostname:
        raise ConfigError(f"the server URL has no host name (got {url!r})")
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise ConfigError("the server URL must not carry credentials, a query or a fragment")
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError(f"the server URL has an invalid port (got {url!r})") from None
    path = parsed.path.rstrip("/")
    if path.endswith(AGENT_PATH):
        path = path[: -len(AGENT_PATH)]
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    netloc = host if port in (None, 443) else f"{host}:{port}"
    return urllib.parse.urlunsplit(("https", netloc, path, "", ""))


def agent_ws_url(base_url: str) -> str:
    """The control-plane websocket address for a normalised server URL."""
    parsed = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(("wss", parsed.netloc, parsed.path.rstrip("/") + AGENT_PATH, "", ""))
