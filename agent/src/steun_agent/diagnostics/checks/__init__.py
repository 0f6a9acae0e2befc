"""The routine tests, one class each, in catalogue order."""

from __future__ import annotations

from typing import Any

from ..model import Check
from . import hardware, network, security, software, system

ALL_CHECKS: tuple[Check[Any], ...] = (
    *hardware.CHECKS,
    *system.CHECKS,
    *software.CHECKS,
    *network.CHECKS,
    *security.CHECKS,
)
BY_ID: dict[str, Check[Any]] = {check.id: check for check in ALL_CHECKS}

__all__ = ["ALL_CHECKS", "BY_ID"]
