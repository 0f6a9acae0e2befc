"""The local policy file: what this machine's admin allows in a session, which no server can loosen.

The file is TOML, by default ``/etc/steun-agent/policy.toml`` (``%ProgramData%\\Steun\\policy.toml`` on
Windows)::

    forbid = ["shell", "install"]   # never granted, whoever asks and whatever the user answers
    always_prompt = true            # even an installed service agent asks the user for everything
    unattended = ["view"]           # granted without a prompt, only to an installed service agent
    prompt_timeout = 30             # seconds; at most 60, so it can only shorten the default
    language = "nl"                 # en, nl or fr
    shell_account = "helpdesk"      # service agent only: shell and files act as this account

On POSIX the file is honoured only when it, and every directory above it, belongs to root and is not writable
by group or others (a directory with the sticky bit, like /tmp, may be). Anything else, a symbolic link, a
file that does not parse, an unknown key or capability name: :class:`PolicyError`, and the agent refuses to
start sessions until an admin fixes it. A missing file (below directories that are the admin's) means the
built-in defaults: prompt for everything, no unattended access.

An installed service agent runs as root, and root is not whom a technician's shell or file browser should be:
``shell_account`` names the local account that ``shell`` and ``files`` act as in service mode. Without it a
service agent forbids both (a quick-support agent acts as the user who started it, and needs no setting).
See docs/design/0060-consent-and-local-policy.md.

Nothing here reads the network: the server cannot send, change or override a policy. :func:`decide` takes
only the capabilities asked for, this file and how the agent was started (``Mode``), which the agent knows
by itself.
"""

from __future__ import annotations

import enum
import os
import re
import stat
import sys
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steun_protocol.session import Capability

from .errors import EXIT_STATE, AgentError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    DEFAULT_POLICY_PATH = Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Steun" / "policy.toml"
else:
    DEFAULT_POLICY_PATH = Path("/etc/steun-agent/policy.toml")

#: The consent prompt's longest life, in seconds. The policy may shorten it, never lengthen it.
MAX_PROMPT_TIMEOUT = 60.0
#: Below this nobody can read the prompt; an admin who wants "never" writes ``forbid`` instead.
MIN_PROMPT_TIMEOUT = 1.0
#: A policy is a few lines; anything bigger is not one.
MAX_POLICY_BYTES = 64 * 1024
LANGUAGES = ("en", "nl", "fr")
#: Who may own the policy file and the directories above it. Only the machine's admin.
ROOT_ONLY: frozenset[int] = frozenset({0})

_KEYS = {"forbid", "always_prompt", "unattended", "prompt_timeout", "language", "shell_account"}
#: Capabilities that act as a local account: in service mode they need ``shell_account``.
ACCOUNT_CAPABILITIES: frozenset[Capability] = frozenset({Capability.SHELL, Capability.FILES})
#: A POSIX portable user name (what useradd accepts by default), or a Windows account name without a domain.
_ACCOUNT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")


class PolicyError(AgentError):
    """The policy file exists but cannot be trusted or understood: no session may start."""

    exit_code = EXIT_STATE

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"the local policy file {path} {problem}. Remote sessions are refused until an administrator "
            "fixes it (see docs/agent-ui.md, 'Local policy')."
        )


class Mode(enum.StrEnum):
    """How this agent runs. The agent knows it from how it was started; no message from the server sets it."""

    #: ``steun-agent support`` or any agent with a person in front of it: everything needs a yes.
    ATTENDED = "attended"
    #: The installed service (root / LocalSystem): the policy's ``unattended`` list may apply.
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Policy:
    """The admin's rules. The default instance is what applies when there is no file."""

    forbid: frozenset[Capability] = frozenset()
    always_prompt: bool = False
    unattended: frozenset[Capability] = frozenset()
    prompt_timeout: float = MAX_PROMPT_TIMEOUT
    language: str | None = None
    #: Service mode: the local account ``shell`` and ``files`` act as (None: both forbidden in service mode).
    shell_account: str | None = None
    #: Where the rules came from; None for the built-in defaults.
    source: Path | None = None
    #: Things worth telling the admin (a timeout that was shortened to the maximum, ...).
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not MIN_PROMPT_TIMEOUT <= self.prompt_timeout <= MAX_PROMPT_TIMEOUT:
            raise ValueError(f"prompt_timeout must be within [{MIN_PROMPT_TIMEOUT}, {MAX_PROMPT_TIMEOUT}]")
        if self.language is not None and self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        if self.shell_account is not None and not _ACCOUNT_NAME.fullmatch(self.shell_account):
            raise ValueError(f"shell_account {self.shell_account!r} is not an account name")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy makes of one request, before the user is asked anything."""

    #: Asked for, refused by the policy; no answer from the user can grant these.
    forbidden: frozenset[Capability]
    #: Need the user's yes.
    prompt: frozenset[Capability]
    #: Allowed without a prompt (service mode, listed in ``unattended``, ``always_prompt`` off).
    unattended: frozenset[Capability]

    @property
    def needs_prompt(self) -> bool:
        return bool(self.prompt)


def decide(requested: Iterable[Capability], policy: Policy, mode: Mode) -> Decision:
    """Sort the capabilities asked for into forbidden / prompt / unattended. Pure; forbid wins over all."""
    asked = frozenset(Capability(c) for c in requested)
    forbidden = asked & policy.forbid
    if mode is Mode.SERVICE and policy.shell_account is None:
        forbidden |= asked & ACCOUNT_CAPABILITIES  # as whom? not as root
    rest = asked - forbidden
    if mode is Mode.SERVICE and not policy.always_prompt:
        unattended = rest & policy.unattended
    else:
        unattended = frozenset()
    return Decision(forbidden=forbidden, prompt=rest - unattended, unattended=unattended)


# --------------------------------------------------------------------------------------------- parsing


def parse_policy(text: str, *, source: Path | None = None) -> Policy:
    """Build a :class:`Policy` from TOML text. Strict: an unknown key or name is an error, never ignored.

    Being strict matters here: ``forbid = ["shel"]`` or ``alwayz_prompt = true`` silently ignored would leave
    the machine more open than its admin believes.
    """
    where = source or Path("<policy>")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(where, f"is not valid TOML ({exc})") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise PolicyError(where, f"has unknown settings: {', '.join(unknown)} (known: {known})")
    notes: list[str] = []
    forbid = _capabilities(raw, "forbid", where)
    unattended = _capabilities(raw, "unattended", where)
    always_prompt = raw.get("always_prompt", False)
    if not isinstance(always_prompt, bool):
        raise PolicyError(where, "has always_prompt that is not true or false")
    timeout = raw.get("prompt_timeout", MAX_PROMPT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise PolicyError(where, "has prompt_timeout that is not a number of seconds")
    timeout = float(timeout)
    if not timeout >= MIN_PROMPT_TIMEOUT:  # also catches NaN
        raise PolicyError(where, f"has prompt_timeout below {MIN_PROMPT_TIMEOUT:g} s")
    if timeout > MAX_PROMPT_TIMEOUT:
        notes.append(f"prompt_timeout {timeout:g} s shortened to the maximum of {MAX_PROMPT_TIMEOUT:g} s")
        timeout = MAX_PROMPT_TIMEOUT
    language = raw.get("language")
    if language is not None and language not in LANGUAGES:
        raise PolicyError(where, f"has language {language!r}; use one of {', '.join(LANGUAGES)}")
    shell_account = raw.get("shell_account")
    if shell_account is not None and (
        not isinstance(shell_account, str) or not _ACCOUNT_NAME.fullmatch(shell_account)
    ):
        raise PolicyError(where, f"has shell_account {shell_account!r} that is not an account name")
    if shell_account in ("root", "Administrator", "SYSTEM"):
        notes.append(f"shell_account {shell_account} gives technicians full control of this machine")
    if unattended & forbid:
        notes.append(
            "capabilities both forbidden and unattended are forbidden: "
            + ", ".join(sorted(c.value for c in unattended & forbid))
        )
    return Policy(
        forbid=forbid,
        always_prompt=always_prompt,
        unattended=unattended,
        prompt_timeout=timeout,
        language=language,
        shell_account=shell_account,
        source=source,
        notes=tuple(notes),
    )


def _capabilities(raw: Mapping[str, Any], key: str, where: Path) -> frozenset[Capability]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(where, f"has {key} that is not a list of capability names")
    known = {c.value for c in Capability}
    bad = sorted(v for v in value if v not in known)
    if bad:
        names = ", ".join(sorted(known))
        raise PolicyError(where, f"names unknown capabilities in {key}: {', '.join(bad)} (known: {names})")
    return frozenset(Capability(v) for v in value)


# --------------------------------------------------------------------------------------------- loading


def load_policy(path: Path = DEFAULT_POLICY_PATH, *, trusted_owners: Collection[int] = ROOT_ONLY) -> Policy:
    """Read and check the policy file; the defaults when it does not exist. Blocking: use ``to_thread``.

    ``trusted_owners`` is for tests run by an unprivileged user; production code keeps the default (root).
    There is deliberately no environment variable or command-line option to move the file: either would let
    whoever starts the agent point it at a policy of their choosing.
    """
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _load_windows(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        # No file: the defaults. Unless someone other than the admin could have removed it (its forbids
        # gone with it): the directories that exist above it must be the admin's as well.
        _check_directories(path.parent, trusted_owners, path, missing_ok=True)
        return Policy()
    except OSError as exc:
        if os.path.islink(path):
            raise PolicyError(path, "is a symbolic link; put the file itself there") from None
        raise PolicyError(path, f"cannot be read ({exc.strerror})") from None
    try:
        # Check the open file itself (fstat), so the file checked is the file read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PolicyError(path, "is not a regular file")
        _check_owner(st, trusted_owners, path, "file")
        if st.st_size > MAX_POLICY_BYTES:
            raise PolicyError(path, f"is larger than {MAX_POLICY_BYTES} bytes")
        data = os.read(fd, MAX_POLICY_BYTES + 1)
    finally:
        os.close(fd)
    _check_directories(path.parent, trusted_owners, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(path, "is not UTF-8 text") from None
    return parse_policy(text, source=path)


def _check_owner(st: os.stat_result, trusted: Collection[int], path: Path, what: str) -> None:
    if st.st_uid not in trusted:
        raise PolicyError(
            path, f"is ignored: its {what} belongs to uid {st.st_uid}, not to root (only an admin may own it)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    ):
        raise PolicyError(
            path,
            f"is ignored: its {what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "run: chmod go-w",
        )


def _check_directories(
    directory: Path, trusted: Collection[int], path: Path, *, missing_ok: bool = False
) -> None:
    """Whoever can write a directory above the file can swap or remove it: each one must be the admin's."""
    current = Path(os.path.realpath(directory))
    for parent in (current, *current.parents):
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            if missing_ok:
                continue
            raise PolicyError(path, f"is below {parent}, which disappeared") from None
        except OSError as exc:
            raise PolicyError(path, f"is below {parent}, which cannot be checked ({exc.strerror})") from None
        _check_owner(st, trusted, path, f"directory {parent}")


def _load_windows(path: Path) -> Policy:  # pragma: no cover - exercised on Windows only
    """Until the ACL check exists, a Windows policy may only tighten: ``unattended`` is not honoured."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Policy()
    except OSError as exc:
        raise PolicyError(path, f"cannot be read ({exc.strerror})") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(path, f"is larger than {MAX_POLICY_BYTES} bytes")
    policy = parse_policy(data.decode("utf-8", errors="strict"), source=path)
    if not policy.unattended:
        return policy
    return Policy(
        forbid=policy.forbid,
        always_prompt=policy.always_prompt,
        unattended=frozenset(),
        prompt_timeout=policy.prompt_timeout,
        language=policy.language,
        source=path,
        notes=(*policy.notes, "unattended is not honoured on Windows until the file's ACL is checked"),
    )
