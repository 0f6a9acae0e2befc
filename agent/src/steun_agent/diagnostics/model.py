"""What a test is made of: a probe that gathers data and a pure ``evaluate`` that grades it into findings."""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from steun_protocol.catalogue import Catalogue
from steun_protocol.diagnostics import MAX_VALUE_TEXT, Policy, Scalar, Status

from .pool import ProbePool

if TYPE_CHECKING:
    from .backend import DiagnosticsBackend
    from .sampler import Sampler

D = TypeVar("D")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Finding:
    """One graded outcome of a test; the runner turns it into a ``CheckResult``.

    ``summary`` names a template of the test (``level``) or a shared one (``common.timeout``).
    """

    status: Status
    summary: str
    params: Mapping[str, Scalar] = field(default_factory=dict)
    subject: str | None = None
    value: Scalar = None
    measured: Mapping[str, Scalar] = field(default_factory=dict)
    detail: str = ""


def grade_below(
    value: float, t: Mapping[str, float], warn: str = "warn_below", fail: str = "fail_below"
) -> Status:
    """``fail`` strictly below ``t[fail]``, ``warn`` strictly below ``t[warn]``, else ``pass``. A value
    exactly at a threshold passes it."""
    if fail in t and value < t[fail]:
        return "fail"
    if warn in t and value < t[warn]:
        return "warn"
    return "pass"


def grade_at(value: float, t: Mapping[str, float], warn: str = "warn_at", fail: str = "fail_at") -> Status:
    """``fail`` at or above ``t[fail]``, ``warn`` at or above ``t[warn]``, else ``pass``. A value exactly at
    a threshold triggers it."""
    if fail in t and value >= t[fail]:
        return "fail"
    if warn in t and value >= t[warn]:
        return "warn"
    return "pass"


def clip(value: object, limit: int = MAX_VALUE_TEXT) -> str:
    """Text that always encodes (no lone surrogates) and fits the protocol's length limit."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def joined(items: list[str], limit: int = 8) -> str:
    """A short list for a sentence: the first ``limit`` items and how many more."""
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" (+{len(items) - limit})"
    return clip(shown)


def rnd(value: float, digits: int = 1) -> float:
    return round(float(value), digits)


GIB = 1024**3


def gib(n: float) -> float:
    return round(n / GIB, 1)


@dataclass(slots=True)
class Context:
    """What a probe may use while one test runs."""

    backend: DiagnosticsBackend
    pool: ProbePool
    policy: Policy
    catalogue: Catalogue
    sampler: Sampler | None = None
    #: The effective thresholds of the test being run (catalogue defaults with the policy's overrides).
    thresholds: Mapping[str, float] = field(default_factory=dict)
    timeout: float = 2.5
    clock: Callable[[], float] = time.time

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking backend call in the diagnostics pool."""
        return await self.pool.run(fn, *args)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Check(abc.ABC, Generic[D]):
    """One routine test: ``probe`` gathers (may block in the pool, may wait), ``evaluate`` only grades."""

    id: ClassVar[str]

    @abc.abstractmethod
    async def probe(self, ctx: Context) -> D:
        """Gather the data; raise ``Unavailable``, ``PermissionDenied`` or ``ProbeFailed`` when it cannot."""

    @abc.abstractmethod
    def evaluate(self, data: D, t: Mapping[str, float]) -> list[Finding]:
        """Grade the data against the thresholds ``t``; pure and fast (runs on the event loop)."""
