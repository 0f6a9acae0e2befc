"""Accounts: roles, password hashing, TOTP, login throttling, web sessions and their REST routes."""

from __future__ import annotations

from .roles import Role, has_permission

__all__ = ["Role", "has_permission"]
