"""Server configuration: ``<data_dir>/steun.toml`` overlaid by ``STEUN_*`` environment variables."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_FILE_NAME = "steun.toml"
DATABASE_FILE_NAME = "steun.db"
ORG_KEY_FILE_NAME = "org-key.pem"
TLS_DIR_NAME = "tls"
ENV_PREFIX = "STEUN_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "steun"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything the server reads at start. Build it with :func:`load_config`; change it with ``replace``."""

    data_dir: Path
    #: SQLAlchemy URL; empty means the SQLite file ``<data_dir>/steun.db``.
    database_url: str = ""
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    #: The URL browsers and agents use (``https://support.example.org``); its origin is the only one allowed
    #: on state-changing requests. Empty: derived from listen host and port.
    public_url: str = ""
    #: Extra origins accepted besides the public URL's (for instance a second DNS name).
    extra_origins: tuple[str, ...] = ()
    tls: bool = True
    #: Admin-supplied certificate chain and key (PEM); empty: the self-signed pair made by ``steun init``.
    tls_cert: str = ""
    tls_key: str = ""
    #: asyncio's per-connection TLS read buffer (bytes); see docs/design/0001-tls-read-buffer.md.
    tls_read_buffer: int = 16 * 1024
    #: Largest HTTP request body accepted (bytes).
    client_max_size: int = 1024 * 1024
    session_idle_timeout: float = 8 * 3600.0
    session_absolute_timeout: float = 24 * 3600.0
    #: Login throttling: failures allowed before the first delay, first delay, cap (seconds).
    throttle_free_failures: int = 3
    throttle_base_delay: float = 1.0
    throttle_max_delay: float = 300.0
    #: A source address is shared by many people (NAT, VPN): it gets more free failures.
    throttle_address_free_failures: int = 10
    #: argon2id cost for new password hashes (RFC 9106's second recommendation by default). Existing hashes
    #: carry their own parameters and are upgraded at the next successful sign-in.
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 64 * 1024
    password_hash_parallelism: int = 4
    #: How often the audit chain head is signed with the org key (seconds).
    audit_sign_interval: float = 300.0
    #: Outgoing messages buffered per console websocket before it is closed as too slow.
    ws_send_queue: int = 256
    #: Sent to agents; an agent silent for three intervals is offline (seconds).
    agent_heartbeat_interval: float = 30.0
    #: An agent connection must finish ``auth``/``enroll`` within this time (seconds).
    agent_auth_timeout: float = 10.0
    #: Routine-test results and runs older than this many days are deleted (the latest result of each test
    #: stays, whatever its age).
    diagnostics_retention_days: float = 90.0
    #: How often the routine-test scheduler looks for devices whose group's interval came round (seconds).
    diagnostics_schedule_tick: float = 30.0
    #: A device the scheduler has not run yet starts within this many seconds (spreads a start-up storm).
    diagnostics_first_run_spread: float = 300.0
    #: Scheduled routine-test runs in progress at once on this node.
    diagnostics_max_scheduled_runs: int = 20
    #: The organisation's name as agents show it in the consent prompt (it is inside every signed offer).
    org_name: str = "Steun"
    #: Remote sessions: how long a relay ticket is good for (and how long one side waits for the other).
    relay_ticket_ttl: float = 120.0
    #: Quick support: how long a support code lives (seconds; at most the protocol's 600).
    support_code_ttl: float = 600.0
    #: Wrong support codes per source address, and on the whole server, in an hour before waits begin.
    support_redeem_free_failures: int = 5
    support_redeem_global_free_failures: int = 30
    log_level: str = "INFO"

    # -- derived values ------------------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    @property
    def org_key_file(self) -> Path:
        return self.data_dir / ORG_KEY_FILE_NAME

    @property
    def tls_cert_file(self) -> Path:
        return Path(self.tls_cert) if self.tls_cert else self.data_dir / TLS_DIR_NAME / "cert.pem"

    @property
    def tls_key_file(self) -> Path:
        return Path(self.tls_key) if self.tls_key else self.data_dir / TLS_DIR_NAME / "key.pem"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / DATABASE_FILE_NAME}"

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        host = self.listen_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "localhost"
        return f"{scheme}://{_url_host(host)}:{self.listen_port}"

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins accepted on state-changing requests and console websocket upgrades."""
        origins = {origin_of(self.effective_public_url), *(origin_of(o) for o in self.extra_origins)}
        if not self.public_url and _is_local(self.listen_host):
            # Without a public URL the server is reached on loopback under any of its local names.
            scheme = "https" if self.tls else "http"
            for name in ("localhost", "127.0.0.1", "[::1]"):
                origins.add(f"{scheme}://{name}:{self.listen_port}")
        return frozenset(origins)


def origin_of(url: str) -> str:
    """The ``scheme://host[:port]`` of a URL, lower-cased, default port omitted (as browsers send it)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r}")
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"bad port in URL {url!r}") from None
    host = _url_host(parts.hostname.lower())
    if port is None or port == default:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _url_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _is_local(host: str) -> bool:
    if host in ("localhost", "0.0.0.0", "::", ""):  # noqa: S104
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- loading -----------------------------------------------------------------------------------------------

_FIELDS = {f.name: f for f in dataclasses.fields(ServerConfig)}


def load_config(
    data_dir: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Build the configuration: defaults < ``steun.toml`` < ``STEUN_*`` environment < ``overrides``.

    ``data_dir`` (a command-line option) wins over ``STEUN_DATA_DIR``. A missing TOML file is fine (the
    defaults apply); a bad value anywhere raises :class:`ConfigError` naming the key and where it came from.
    """
    environ = os.environ if env is None else env
    if data_dir is None:
        data_dir = environ.get(ENV_PREFIX + "DATA_DIR") or default_data_dir()
    root = Path(data_dir).expanduser()
    values: dict[str, Any] = {}
    file = root / CONFIG_FILE_NAME
    if file.is_file():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        raw = _flatten(raw)
        for key, value in raw.items():
            if key == "data_dir":
                raise ConfigError(f"{file}: data_dir cannot be set inside the data directory's own file")
            values[key] = _coerce(key, value, source=str(file))
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "DATA_DIR":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            continue  # STEUN_* variables of other components (the agent, the tests) are not ours
        values[key] = _coerce(key, value, source=f"environment variable {name}", from_text=True)
    for key, value in (overrides or {}).items():
        values[key] = _coerce(key, value, source="override")
    config = ServerConfig(data_dir=root, **values)
    _validate(config)
    return config


def _flatten(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept both flat keys and the sections the admin guide shows (``[listen] host = ...``)."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def _coerce(key: str, value: Any, *, source: str, from_text: bool = False) -> Any:
    field = _FIELDS.get(key)
    if field is None or key == "data_dir":
        raise ConfigError(f"{source}: unknown setting {key!r}")
    kind = field.type
    where = f"{source}: {key}"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind == "int":
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind == "float":
        if from_text and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if kind == "tuple[str, ...]":
        if from_text and isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unhandled config type {kind!r}")  # pragma: no cover


def _validate(config: ServerConfig) -> None:
    if not 0 <= config.listen_port <= 65535:
        raise ConfigError(f"listen_port: {config.listen_port} is not a TCP port (0-65535)")
    if not config.listen_host:
        raise ConfigError("listen_host: must not be empty")
    url = config.database_url
    if url and not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
        raise ConfigError(
            f"database_url: {url.split('://')[0]!r} is not supported; "
            "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
        )
    if config.public_url:
        origin_of(config.public_url)
    for origin in config.extra_origins:
        origin_of(origin)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("tls_cert and tls_key: give both or neither")
    if not 4096 <= config.tls_read_buffer <= 1024 * 1024:
        raise ConfigError(f"tls_read_buffer: {config.tls_read_buffer} is outside 4096..1048576 bytes")
    if config.client_max_size < 1024:
        raise ConfigError("client_max_size: must be at least 1024 bytes")
    if config.session_idle_timeout <= 0 or config.session_absolute_timeout <= 0:
        raise ConfigError("session timeouts must be positive")
    if config.session_idle_timeout > config.session_absolute_timeout:
        raise ConfigError("session_idle_timeout must not exceed session_absolute_timeout")
    if config.throttle_base_delay <= 0 or config.throttle_max_delay < config.throttle_base_delay:
        raise ConfigError("throttle delays: need 0 < throttle_base_delay <= throttle_max_delay")
    if config.throttle_free_failures < 0 or config.throttle_address_free_failures < 0:
        raise ConfigError("throttle free failures must not be negative")
    if not 1 <= config.password_hash_time_cost <= 20:
        raise ConfigError("password_hash_time_cost: must be 1..20")
    if not 1024 <= config.password_hash_memory_kib <= 4 * 1024 * 1024:
        raise ConfigError("password_hash_memory_kib: must be 1024..4194304 (KiB)")
    if not 1 <= config.password_hash_parallelism <= 64:
        raise ConfigError("password_hash_parallelism: must be 1..64")
    if config.audit_sign_interval <= 0:
        raise ConfigError("audit_sign_interval: must be positive")
    if config.ws_send_queue < 8:
        raise ConfigError("ws_send_queue: must be at least 8")
    if not 0 < config.agent_heartbeat_interval <= 3600:
        raise ConfigError("agent_heartbeat_interval: must be in (0, 3600] seconds")
    if not 0 < config.agent_auth_timeout <= 300:
        raise ConfigError("agent_auth_timeout: must be in (0, 300] seconds")
    if not 1 <= config.diagnostics_retention_days <= 3650:
        raise ConfigError("diagnostics_retention_days: must be 1..3650 days")
    if not 0 < config.diagnostics_schedule_tick <= 3600:
        raise ConfigError("diagnostics_schedule_tick: must be in (0, 3600] seconds")
    if not 0 <= config.diagnostics_first_run_spread <= 86400:
        raise ConfigError("diagnostics_first_run_spread: must be 0..86400 seconds")
    if not 1 <= config.diagnostics_max_scheduled_runs <= 1000:
        raise ConfigError("diagnostics_max_scheduled_runs: must be 1..1000")
    if not config.org_name.strip() or len(config.org_name) > 256:
        raise ConfigError("org_name: must be 1..256 characters (agents show it to the user)")
    if not 0 < config.relay_ticket_ttl <= 600:
        raise ConfigError("relay_ticket_ttl: must be in (0, 600] seconds")
    if not 0 < config.support_code_ttl <= 600:
        raise ConfigError("support_code_ttl: must be in (0, 600] seconds")
    if not 0 <= config.support_redeem_free_failures <= 1000:
        raise ConfigError("support_redeem_free_failures: must be 0..1000")
    if not 0 <= config.support_redeem_global_free_failures <= 100_000:
        raise ConfigError("support_redeem_global_free_failures: must be 0..100000")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level: {config.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
