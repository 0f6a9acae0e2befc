"""The routine-test catalogue: what each test measures, its thresholds, texts in en/nl/fr, summary templates.

The catalogue is data shipped in this package (``data/*.toml``), validated by the msgspec schema below when
first loaded. The server serves it to the console; the agent uses it for default thresholds and to render
its own terminal and HTML reports. Rendering is plain text: whoever shows it in HTML escapes it.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from ..diagnostics import (
    GROUPS,
    CheckId,
    GroupId,
    KbKey,
    Policy,
    Scalar,
    Status,
    Threshold,
)
from ..errors import ErrorCode, LocalProtocolError
from ..messages import Payload

Lang = Literal["en", "nl", "fr"]
LANGS: tuple[Lang, ...] = ("en", "nl", "fr")
Platform = Literal["linux", "windows", "darwin"]

_TEXT = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_BRACE = re.compile(r"[{}]")
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
_DATA_FILES = ("core.toml", "hardware.toml", "os.toml", "software.toml", "network.toml", "security.toml")


class CatalogueError(LocalProtocolError):
    """The shipped catalogue data is inconsistent (a bug in this package)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INTERNAL, message)


class Text(Payload, frozen=True):
    """One text in every language Steun speaks."""

    en: _TEXT
    nl: _TEXT
    fr: _TEXT

    def get(self, lang: str) -> str:
        return str(getattr(self, lang if lang in LANGS else "en"))


class ThresholdSpec(Payload, frozen=True):
    """A default threshold. Names ending in ``_below`` trigger when the value is strictly below it; names
    ending in ``_at`` trigger when the value is at or above it; other names are parameters (a window, a
    minimum sample size) that grade nothing by themselves."""

    default: Threshold
    #: A key of ``Catalogue.sources``: where the default comes from.
    source: Annotated[str, msgspec.Meta(max_length=64)]
    unit: Annotated[str, msgspec.Meta(max_length=16)] = ""


class CheckSpec(Payload, frozen=True):
    id: CheckId
    group: GroupId
    title: Text
    #: What is measured, in one or two sentences.
    measures: Text
    #: Why it matters and what the statuses mean, for a first-line technician or the end user.
    explanation: Text
    #: The suggested fix shown with a warning or a failure.
    fix: Text
    platforms: Annotated[list[Platform], msgspec.Meta(min_length=1)]
    kb_key: KbKey
    #: Summary templates: the key of a result is ``<id>.<name>``.
    summaries: Annotated[dict[_Name, Text], msgspec.Meta(min_length=1)]
    #: Statuses this test can return on a platform it supports (documented; tests check them).
    statuses: Annotated[list[Status], msgspec.Meta(min_length=1)]
    unit: Annotated[str, msgspec.Meta(max_length=16)] = ""
    #: What one result is about when the test reports per item ("volume", "interface"); empty: the machine.
    per: Annotated[str, msgspec.Meta(max_length=32)] = ""
    thresholds: dict[_Name, ThresholdSpec] = {}


class GroupSpec(Payload, frozen=True):
    id: GroupId
    title: Text


class Source(Payload, frozen=True):
    title: _TEXT
    url: Annotated[str, msgspec.Meta(max_length=512)] = ""


class Lifecycle(Payload, frozen=True):
    """When an operating-system release stops receiving security updates (``os.supported``)."""

    os_id: Annotated[str, msgspec.Meta(max_length=32)]  # os-release ID: debian, ubuntu, fedora, windows...
    version: Annotated[str, msgspec.Meta(max_length=32)]  # os-release VERSION_ID prefix
    name: Annotated[str, msgspec.Meta(max_length=64)]
    eol: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class PolicyDefaults(Payload, frozen=True):
    """Defaults of the list-valued policy settings, used where a group's policy leaves them empty."""

    dns_names: list[str]
    expected_ports: list[int]


class _CoreFile(Payload, frozen=True):
    version: int
    groups: list[GroupSpec]
    statuses: dict[Status, Text]
    common: dict[str, Text]
    labels: dict[str, Text]
    sources: dict[str, Source]
    policy_defaults: PolicyDefaults
    os_lifecycle: list[Lifecycle]


class _ChecksFile(Payload, frozen=True):
    checks: list[CheckSpec]


class Catalogue(Payload, frozen=True, dict=True):  # dict: room for the cached index
    version: int
    groups: list[GroupSpec]
    #: Status labels ("Pass", "Geslaagd", "Réussi"...).
    statuses: dict[Status, Text]
    #: Summary templates shared by all tests: key ``common.<name>``.
    common: dict[str, Text]
    #: Short interface words for reports (``fix``, ``measured``...).
    labels: dict[str, Text]
    sources: dict[str, Source]
    policy_defaults: PolicyDefaults
    os_lifecycle: list[Lifecycle]
    checks: list[CheckSpec]

    @functools.cached_property
    def by_id(self) -> dict[str, CheckSpec]:
        return {check.id: check for check in self.checks}

    def check(self, check_id: str) -> CheckSpec:
        try:
            return self.by_id[check_id]
        except KeyError:
            raise LocalProtocolError(ErrorCode.NOT_FOUND, f"no test {check_id!r} in the catalogue") from None

    def in_group(self, group: str) -> list[CheckSpec]:
        return [check for check in self.checks if check.group == group]

    def template(self, summary_key: str) -> Text | None:
        """The template of a result's summary key, or None when the catalogue has none."""
        head, _, name = summary_key.rpartition(".")
        if head == "common":
            return self.common.get(name)
        spec = self.by_id.get(head)
        return spec.summaries.get(name) if spec is not None else None

    def thresholds(self, check_id: str, policy: Policy | None = None) -> dict[str, float]:
        """A test's effective thresholds: catalogue defaults, overridden by the policy for known names."""
        spec = self.check(check_id)
        values = {name: t.default for name, t in spec.thresholds.items()}
        if policy is not None:
            for name, value in policy.thresholds.get(check_id, {}).items():
                if name in values:
                    values[name] = float(value)
        return values

    def summary(self, summary_key: str, params: Mapping[str, Scalar], lang: str = "en") -> str:
        """Render a result's sentence in ``lang``; an unknown key or parameter never raises."""
        text = self.template(summary_key)
        if text is None:
            return summary_key
        return render(text.get(lang), params, lang)


def policy_problems(policy: Policy, catalogue: Catalogue | None = None) -> list[str]:
    """Why a policy does not fit the catalogue (unknown tests, unknown threshold names); empty when it fits.

    The agent ignores what it does not know (a newer server may know more tests); the server uses this to
    refuse a policy an administrator mistyped.
    """
    cat = catalogue or load_catalogue()
    problems: list[str] = []
    for check_id, overrides in policy.thresholds.items():
        spec = cat.by_id.get(check_id)
        if spec is None:
            problems.append(f"thresholds: unknown test {check_id!r}")
            continue
        problems += [
            f"thresholds: {check_id} has no threshold {name!r}"
            for name in overrides
            if name not in spec.thresholds
        ]
    problems += [
        f"disabled: unknown test {check_id!r}" for check_id in policy.disabled if check_id not in cat.by_id
    ]
    return problems


def format_scalar(value: Scalar, lang: str = "en") -> str:
    """A parameter as a reader of ``lang`` expects it: decimal comma in nl and fr, at most one decimal."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        word = {"en": ("yes", "no"), "nl": ("ja", "nee"), "fr": ("oui", "non")}.get(lang, ("yes", "no"))
        return word[0] if value else word[1]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "—"
        text = f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.1f}"
        if text in ("-0", "-0.0"):
            text = "0"
        return text.replace(".", ",") if lang in ("nl", "fr") else text
    return value


def render(template: str, params: Mapping[str, Scalar], lang: str = "en") -> str:
    """Fill ``{name}`` placeholders; a missing parameter shows as ``—``. No format specs, no attributes."""
    return _PLACEHOLDER.sub(lambda m: format_scalar(params.get(m.group(1)), lang), template)


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def validate(catalogue: Catalogue) -> list[str]:
    """Consistency problems the schema alone cannot see; empty for a good catalogue."""
    problems: list[str] = []
    seen: set[str] = set()
    group_ids = [g.id for g in catalogue.groups]
    if tuple(group_ids) != GROUPS:
        problems.append(f"groups must be {GROUPS}, not {group_ids}")
    texts: list[tuple[str, Text]] = [(f"common.{k}", t) for k, t in catalogue.common.items()]
    texts += [(f"status {k}", t) for k, t in catalogue.statuses.items()]
    texts += [(f"label {k}", t) for k, t in catalogue.labels.items()]
    if set(catalogue.statuses) != {"pass", "warn", "fail", "error", "not_applicable"}:
        problems.append("every status needs a label")
    for check in catalogue.checks:
        if check.id in seen:
            problems.append(f"{check.id}: duplicate id")
        seen.add(check.id)
        if check.group not in GROUPS:
            problems.append(f"{check.id}: unknown group {check.group!r}")
        for name, threshold in check.thresholds.items():
            if threshold.source not in catalogue.sources:
                problems.append(f"{check.id}: threshold {name} cites unknown source {threshold.source!r}")
        for prefix in ("warn", "fail"):
            below, at = check.thresholds.get(f"{prefix}_below"), check.thresholds.get(f"{prefix}_at")
            if below is not None and at is not None:
                problems.append(f"{check.id}: {prefix}_below and {prefix}_at both set")
        wb, fb = check.thresholds.get("warn_below"), check.thresholds.get("fail_below")
        if wb is not None and fb is not None and fb.default > wb.default:
            problems.append(f"{check.id}: fail_below above warn_below")
        wa, fa = check.thresholds.get("warn_at"), check.thresholds.get("fail_at")
        if wa is not None and fa is not None and fa.default < wa.default:
            problems.append(f"{check.id}: fail_at below warn_at")
        texts += [(f"{check.id}.{k}", t) for k, t in check.summaries.items()]
        texts += [(f"{check.id} {k}", getattr(check, k)) for k in ("title", "measures", "explanation", "fix")]
    for where, text in texts:
        names = {lang: placeholders(text.get(lang)) for lang in LANGS}
        if names["nl"] != names["en"] or names["fr"] != names["en"]:
            problems.append(f"{where}: placeholders differ between languages: {names}")
        for lang in LANGS:
            stripped = _PLACEHOLDER.sub("", text.get(lang))
            if _BRACE.search(stripped):
                problems.append(f"{where} ({lang}): stray brace")
    return problems


def _data(name: str) -> bytes:
    """A data file of this package. Read straight from the package directory when there is one
    (``importlib.resources`` pulls in ``importlib.util`` and ``threading``); through it otherwise (zip)."""
    locations = __spec__.submodule_search_locations if __spec__ is not None else None
    if locations:
        try:
            with open(f"{next(iter(locations))}/data/{name}", "rb") as f:
                return f.read()
        except OSError:
            pass
    return importlib.resources.files(__package__).joinpath("data", name).read_bytes()


@functools.cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped with this package, loaded and checked once per process."""
    core = msgspec.toml.decode(_data(_DATA_FILES[0]), type=_CoreFile)
    checks: list[CheckSpec] = []
    for name in _DATA_FILES[1:]:
        part = msgspec.toml.decode(_data(name), type=_ChecksFile)
        group = name.removesuffix(".toml")
        checks += part.checks
        problems = [f"{c.id}: in {name} but in group {c.group}" for c in part.checks if c.group != group]
        if problems:
            raise CatalogueError("; ".join(problems))
    catalogue = Catalogue(
        version=core.version,
        groups=core.groups,
        statuses=core.statuses,
        common=core.common,
        labels=core.labels,
        sources=core.sources,
        policy_defaults=core.policy_defaults,
        os_lifecycle=core.os_lifecycle,
        checks=checks,
    )
    problems = validate(catalogue)
    if problems:
        raise CatalogueError("; ".join(problems[:20]))
    return catalogue


__all__ = [
    "LANGS",
    "Catalogue",
    "CatalogueError",
    "CheckSpec",
    "GroupSpec",
    "Lang",
    "Lifecycle",
    "Source",
    "Text",
    "ThresholdSpec",
    "format_scalar",
    "load_catalogue",
    "placeholders",
    "policy_problems",
    "render",
    "validate",
]
