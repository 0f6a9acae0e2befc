"""Dutch, French and English: same keys, same placeholders, real translations, and the language choice."""

from __future__ import annotations

import string

import pytest
from steun_agent.ui.base import display_text, format_elapsed, group_digits, parse_support_code
from steun_agent.ui.i18n import LANGUAGES, Texts, catalogue, language_from_locale, pick_language
from steun_protocol.session import Capability


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_key() -> None:
    english = set(catalogue("en"))
    for language in LANGUAGES:
        keys = set(catalogue(language))
        assert keys == english, f"{language}: missing {english - keys}, extra {keys - english}"


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_translations_use_the_same_placeholders_and_are_translated(language: str) -> None:
    english, other = catalogue("en"), catalogue(language)
    same = []
    for key, text in english.items():
        assert placeholders(other[key]) == placeholders(text), key
        assert other[key].strip(), key
        if other[key] == text:
            same.append(key)
    # Titles carry the product name and "session" is French too; anything else identical is untranslated.
    assert set(same) <= {"indicator.title", "short.chat"}, same


def test_every_capability_has_words_in_every_language() -> None:
    for language in LANGUAGES:
        texts = Texts(language)
        for capability in Capability:
            assert texts.capability(capability)
            assert texts.short([capability])


def test_the_yes_words_differ_per_language_and_never_include_no() -> None:
    assert "j" in Texts("nl").yes_words() and "o" in Texts("fr").yes_words()
    for language in LANGUAGES:
        assert not Texts(language).yes_words() & {"n", "no", "nee", "non", ""}


def test_language_choice_order() -> None:
    env = {"LANG": "fr_BE.UTF-8"}
    assert pick_language("nl", "en", env) == "nl"  # the user's own choice first
    assert pick_language(None, "en", env) == "en"  # then the admin's policy
    assert pick_language(None, None, env) == "fr"  # then the locale
    assert pick_language(None, None, {"LANG": "de_DE.UTF-8"}) == "en"
    assert pick_language("xx", None, {"LANGUAGE": "nl_BE:fr"}) == "nl"
    assert language_from_locale({"LC_ALL": "nl_NL.UTF-8", "LANG": "fr_FR"}) == "nl"


def test_display_text_removes_terminal_escapes_and_bidi_tricks() -> None:
    assert display_text("Jan\x1b[2J\x1b]0;pwned\x07 de Vries") == "Jan [2J ]0;pwned de Vries"
    assert display_text("Jan\u202egnalE") == "JangnalE"  # a right-to-left override would show "Jan Elang"
    assert display_text("a\u200bb\n\tc") == "ab c"
    assert display_text("x" * 500, 20) == "x" * 19 + "…"
    assert display_text("\x00\x01") == "?"


def test_grouping_and_parsing_codes() -> None:
    assert group_digits("048213") == "048 213"
    assert group_digits("123456789") == "123 456 789"
    assert parse_support_code(" 123 456-789 ") == "123456789"
    for bad in ("12345678", "1234567890", "12345678a", "١٢٣٤٥٦٧٨٩"):
        assert parse_support_code(bad) is None
    assert format_elapsed(3725.9) == "1:02:05"
