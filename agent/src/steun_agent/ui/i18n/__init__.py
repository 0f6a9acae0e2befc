"""The agent's words in English, Dutch and French (``en.json``, ``nl.json``, ``fr.json`` beside this file)."""

from __future__ import annotations

import contextlib
import json
import locale
import os
from collections.abc import Iterable, Mapping
from importlib import resources

from steun_protocol.session import Capability

LANGUAGES = ("en", "nl", "fr")
FALLBACK = "en"


def _read(language: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath(f"{language}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{language}.json must map keys to strings")
    return data


# Read once, at import: a few kilobytes, and never a file read on a running event loop later.
_CATALOGUES: dict[str, dict[str, str]] = {language: _read(language) for language in LANGUAGES}


def catalogue(language: str) -> Mapping[str, str]:
    """All strings of one language."""
    if language not in _CATALOGUES:
        raise ValueError(f"no translation for {language!r}")
    return _CATALOGUES[language]


def language_from_locale(environ: Mapping[str, str] | None = None) -> str | None:
    """The first of en/nl/fr named by LANGUAGE, LC_ALL, LC_MESSAGES or LANG (then the OS locale), if any."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    if env.get("LANGUAGE"):
        candidates.extend(env["LANGUAGE"].split(":"))
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(name):
            candidates.append(env[name])
            break
    if environ is None:
        with contextlib.suppress(ValueError):
            candidates.append(locale.getlocale()[0] or "")
    for candidate in candidates:
        code = candidate.strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return None


def pick_language(
    override: str | None = None, policy: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The user's explicit choice, else the admin's policy, else the locale, else English."""
    for choice in (override, policy):
        if choice:
            code = choice.strip().lower()[:2]
            if code in LANGUAGES:
                return code
    return language_from_locale(environ) or FALLBACK


class Texts:
    """One language's strings, with English for any key a translation lacks (a test keeps them in step)."""

    def __init__(self, language: str = FALLBACK) -> None:
        self.language = language if language in LANGUAGES else FALLBACK
        self._strings = catalogue(self.language)
        self._fallback = catalogue(FALLBACK)

    def __call__(self, key: str, /, **values: object) -> str:
        template = self._strings.get(key) or self._fallback.get(key)
        if template is None:
            raise KeyError(key)
        return template.format(**values) if values else template

    def capability(self, capability: Capability) -> str:
        """One line in plain words: what the technician will be able to do."""
        return self(f"capability.{capability.value}")

    def short(self, capabilities: Iterable[Capability]) -> str:
        """A short list for the indicator: "screen, mouse and keyboard"."""
        return ", ".join(self(f"short.{c.value}") for c in capabilities)

    def yes_words(self) -> frozenset[str]:
        return frozenset(w.strip().lower() for w in self("consent.terminal_yes").split(",") if w.strip())
