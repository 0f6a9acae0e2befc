"""Unit tests for configuration: defaults, TOML file, STEUN_* environment, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from steun_server.config import ServerConfig, default_data_dir, load_config, origin_of
from steun_server.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "steun.toml").write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    assert config.data_dir == tmp_path
    assert config.listen_host == "127.0.0.1"
    assert config.listen_port == 8443
    assert config.tls is True
    assert config.tls_read_buffer == 16 * 1024
    assert config.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'steun.db'}"
    assert config.effective_public_url == "https://127.0.0.1:8443"
    assert config.tls_cert_file == tmp_path / "tls" / "cert.pem"


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "steun"
    config = load_config(env={})
    assert config.data_dir == tmp_path / ".local" / "share" / "steun"


def test_data_dir_from_env(tmp_path: Path) -> None:
    config = load_config(env={"STEUN_DATA_DIR": str(tmp_path / "x")})
    assert config.data_dir == tmp_path / "x"
    # an explicit argument (the --data-dir option) wins
    assert load_config(tmp_path, env={"STEUN_DATA_DIR": "/nowhere"}).data_dir == tmp_path


def test_toml_then_env_then_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        'listen_host = "0.0.0.0"\nlisten_port = 9000\npublic_url = "https://support.example.org"\n'
        "[session]\nidle_timeout = 600\n",
    )
    config = load_config(tmp_path, env={"STEUN_LISTEN_PORT": "9443", "STEUN_TLS": "off", "HOME": "/x"})
    assert config.listen_host == "0.0.0.0"
    assert config.listen_port == 9443  # env beats the file
    assert config.tls is False
    assert config.session_idle_timeout == 600.0  # a [section] key is section_key
    assert config.allowed_origins == frozenset({"https://support.example.org"})
    assert load_config(tmp_path, env={}, overrides={"listen_port": 1}).listen_port == 1


def test_database_url_from_env(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://steun@db/steun"
    assert load_config(tmp_path, env={"STEUN_DATABASE_URL": url}).effective_database_url == url


def test_unrelated_steun_env_ignored(tmp_path: Path) -> None:
    load_config(tmp_path, env={"STEUN_TEST_TIMEOUT_FACTOR": "3", "STEUN_AGENT_SOMETHING": "x"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STEUN_LISTEN_PORT": "eighty"}, "listen_port: expected an integer"),
        ({"STEUN_LISTEN_PORT": "70000"}, "not a TCP port"),
        ({"STEUN_TLS": "maybe"}, "tls: expected true or false"),
        ({"STEUN_DATABASE_URL": "mysql://x/y"}, "database_url"),
        ({"STEUN_PUBLIC_URL": "ftp://x"}, "not an http(s) URL"),
        ({"STEUN_TLS_READ_BUFFER": "100"}, "tls_read_buffer"),
        ({"STEUN_SESSION_IDLE_TIMEOUT": "100000"}, "session_idle_timeout must not exceed"),
        ({"STEUN_THROTTLE_BASE_DELAY": "-1"}, "throttle delays"),
        ({"STEUN_TLS_CERT": "/etc/cert.pem"}, "give both or neither"),
        ({"STEUN_LOG_LEVEL": "LOUD"}, "log_level"),
    ],
)
def test_bad_env_values(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(tmp_path, env=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen_port = [", "not valid TOML"),
        ('listen_port = "8443"', "listen_port: expected an integer"),
        ("tls = 1", "tls: expected true or false"),
        ("no_such_key = 1", "unknown setting 'no_such_key'"),
        ('data_dir = "/x"', "data_dir cannot be set"),
        ("extra_origins = [1]", "expected a list of strings"),
    ],
)
def test_bad_toml_values(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env={})


def test_error_names_the_source(tmp_path: Path) -> None:
    write(tmp_path, 'listen_port = "x"')
    with pytest.raises(ConfigError, match=r"steun\.toml"):
        load_config(tmp_path, env={})
    with pytest.raises(ConfigError, match="STEUN_LISTEN_PORT"):
        load_config(tmp_path / "other", env={"STEUN_LISTEN_PORT": "x"})


def test_origins() -> None:
    assert origin_of("https://Example.org:443/path") == "https://example.org"
    assert origin_of("http://example.org:8080/") == "http://example.org:8080"
    assert origin_of("https://[::1]:8443") == "https://[::1]:8443"
    local = ServerConfig(data_dir=Path("/x"), listen_port=9999)
    assert local.allowed_origins == {
        "https://127.0.0.1:9999",
        "https://localhost:9999",
        "https://[::1]:9999",
    }
    public = ServerConfig(
        data_dir=Path("/x"), public_url="https://help.example.org/", extra_origins=("https://b.org",)
    )
    assert public.allowed_origins == {"https://help.example.org", "https://b.org"}


def test_extra_origins_from_env(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={"STEUN_EXTRA_ORIGINS": "https://a.org, https://b.org:8443"})
    assert config.extra_origins == ("https://a.org", "https://b.org:8443")
