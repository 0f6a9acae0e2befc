"""Roles (admin ⊃ specialist ⊃ technician) and the one check every route and command uses."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    TECHNICIAN = "technician"
    SPECIALIST = "specialist"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Role) -> bool:
        """True when a holder of this role may do what ``other`` may do."""
        return self.rank >= other.rank


_RANK = {Role.TECHNICIAN: 1, Role.SPECIALIST: 2, Role.ADMIN: 3}


def has_permission(role: Role | str, required: Role | str) -> bool:
    """The single permission check: routes, websocket commands and the CLI all come through here."""
    try:
        return Role(role).includes(Role(required))
    except ValueError:
        return False
