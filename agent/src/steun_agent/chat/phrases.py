"""Canned chat phrases in English, Dutch and French (``phrases.json`` beside this file), keyed by wire id."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources

from steun_protocol.chat import Phrase, Sender

LANGUAGES = ("en", "nl", "fr")
FALLBACK = "en"


def _read() -> dict[Phrase, dict[str, str]]:
    text = resources.files(__package__).joinpath("phrases.json").read_text(encoding="utf-8")
    data = json.loads(text)
    table: dict[Phrase, dict[str, str]] = {}
    for name, texts in data.items():
        phrase = Phrase[name]  # a name the protocol does not know is a packaging error: fail loudly
        if set(texts) != set(LANGUAGES) or not all(isinstance(t, str) and t for t in texts.values()):
            raise ValueError(f"phrase {name} needs a text in each of {', '.join(LANGUAGES)}")
        table[phrase] = dict(texts)
    missing = set(Phrase) - set(table)
    if missing:
        raise ValueError(f"phrases.json lacks {', '.join(sorted(p.name for p in missing))}")
    return table


# Read once, at import: never a file read on a running event loop later.
_PHRASES: dict[Phrase, dict[str, str]] = _read()


def phrase_text(phrase: Phrase, language: str) -> str:
    texts = _PHRASES[phrase]
    return texts.get(language, texts[FALLBACK])


def phrases_for(sender: Sender, language: str) -> Mapping[Phrase, str]:
    """The phrases one side may send, in ``language``, in protocol order (for the chat window's buttons)."""
    return {p: phrase_text(p, language) for p in Phrase if p.sender is sender}


def known_phrase(value: int) -> Phrase | None:
    try:
        return Phrase(value)
    except ValueError:
        return None
