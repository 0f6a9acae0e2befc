"""The account a remote shell runs as: who, which login shell, which environment, which ids to drop to.

Quick support runs the shell as the person who started the agent (the agent's own account, nothing to drop).
An installed service agent runs as root and starts shells as the account its local policy names: the child
drops privileges between ``fork`` and ``exec`` — ``setgroups`` (the account's supplementary groups, as
``initgroups`` would), ``setregid``, ``setreuid``, in that order, done by ``subprocess`` in C
(``extra_groups``, ``group``, ``user``) so no Python code runs with half-dropped ids. See
docs/design/0091-remote-shell.md.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any

from ..errors import AgentError

#: Environment variables handed through when the shell runs as the agent's own user (a desktop session).
SAME_USER_ENV = ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
#: Handed through in every case: language and time zone.
LOCALE_ENV = ("LANG", "LANGUAGE", "TZ")
#: Shells that mean "this account does not log in".
NO_LOGIN = frozenset({"nologin", "false"})

USER_PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class AccountError(AgentError):
    """The account cannot run a shell (unknown, no login shell, or the agent may not switch to it)."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str

    @classmethod
    def current(cls) -> Account:
        """The account the agent runs as (quick support, attended sessions)."""
        try:
            return cls._from(pwd.getpwuid(os.geteuid()))
        except KeyError:
            raise AccountError(f"uid {os.geteuid()} has no entry in the password database") from None

    @classmethod
    def named(cls, name: str) -> Account:
        """An account by name (the one the local policy names for a service agent)."""
        try:
            return cls._from(pwd.getpwnam(name))
        except KeyError:
            raise AccountError(f"there is no account named {name!r} on this machine") from None

    @classmethod
    def _from(cls, entry: pwd.struct_passwd) -> Account:
        shell = entry.pw_shell or "/bin/sh"
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir or "/", shell)

    @property
    def is_agent_user(self) -> bool:
        return self.uid == os.geteuid()

    def check(self) -> None:
        """Refuse an account that cannot log in or that this process cannot become."""
        if os.path.basename(self.shell) in NO_LOGIN:
            raise AccountError(f"the account {self.name!r} has no login shell ({self.shell})")
        if not self.is_agent_user and os.geteuid() != 0:
            raise AccountError(
                f"the agent runs as uid {os.geteuid()} and cannot start a shell as {self.name!r}"
            )

    def spawn_ids(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that drop to this account in the child (empty when already it)."""
        if self.is_agent_user:
            return {}
        return {
            "user": self.uid,
            "group": self.gid,
            "extra_groups": os.getgrouplist(self.name, self.gid),
        }

    def environment(self, term: str, inherited: dict[str, str] | None = None) -> dict[str, str]:
        """A clean login environment: nothing of the agent's own configuration leaks into the shell."""
        source = os.environ if inherited is None else inherited
        env = {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": self.shell,
            "TERM": term,
            "PATH": ROOT_PATH if self.uid == 0 else USER_PATH,
        }
        passed = LOCALE_ENV + (SAME_USER_ENV if self.is_agent_user else ())
        env.update({k: v for k, v in source.items() if k in passed or k.startswith("LC_")})
        # Without a UTF-8 locale, programs would mangle the non-ASCII text the console sends and shows.
        env.setdefault("LANG", "C.UTF-8")
        return env

    def working_directory(self) -> str:
        return self.home if os.path.isdir(self.home) else "/"
