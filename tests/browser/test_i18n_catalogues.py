"""The console's translations (console/web/i18n/*.json) have the same keys and placeholders in every language."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

I18N = Path(__file__).resolve().parents[2] / "console" / "web" / "i18n"
LANGUAGES = ("en", "nl", "fr")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def load(language: str) -> dict[str, str]:
    data = json.loads((I18N / f"{language}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_same_keys_as_english(language: str) -> None:
    english, other = load("en"), load(language)
    assert sorted(other) == sorted(english), {
        "missing": sorted(set(english) - set(other)),
        "extra": sorted(set(other) - set(english)),
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_values_are_text_with_the_same_placeholders(language: str) -> None:
    english, other = load("en"), load(language)
    for key, value in other.items():
        assert isinstance(value, str) and value.strip(), key
        assert sorted(PLACEHOLDER.findall(value)) == sorted(PLACEHOLDER.findall(english[key])), key


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_translations_are_not_english_copies(language: str) -> None:
    english, other = load("en"), load(language)
    # Some words are the same in both languages (Status, Online, MTU, Live); most are not.
    same = [key for key, value in other.items() if value == english[key]]
    assert len(same) < len(english) * 0.1, same


def test_plural_keys_come_in_pairs() -> None:
    keys = set(load("en"))
    for key in keys:
        if key.endswith(".one"):
            assert key[: -len(".one")] + ".other" in keys, key
