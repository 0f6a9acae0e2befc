"""A backend for platforms without one yet: the runner reports every test there as not applicable."""

from __future__ import annotations

from typing import Any

from ..errors import Unavailable


class UnsupportedPlatform:
    """Has the backend's name only; the catalogue lists no test for it, so no probe is ever called."""

    def __init__(self, platform: str) -> None:
        self.name = {"win32": "windows", "darwin": "darwin"}.get(platform, platform)

    def __getattr__(self, attribute: str) -> Any:
        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("common.platform", platform=self.name)

        return unavailable
