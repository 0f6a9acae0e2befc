"""Protocol versions and their negotiation."""

from __future__ import annotations

from collections.abc import Iterable

#: The version this build speaks best.
PROTOCOL_VERSION = 1
#: Every version this build can speak, newest first.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)


def negotiate(offered: Iterable[int], supported: Iterable[int] = SUPPORTED_VERSIONS) -> int | None:
    """The highest version both sides speak, or None when they share none."""
    common = set(offered) & set(supported)
    return max(common) if common else None
