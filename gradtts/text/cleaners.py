"""English text normalisation (the ``english_cleaners`` pipeline of the official checkpoints)."""

from __future__ import annotations

import re

from gradtts.text.numbers import normalize_numbers

_WHITESPACE = re.compile(r"\s+")

# Abbreviation -> expansion; matched case-insensitively at a word start and only with the full stop.
_ABBREVIATIONS = [
    (re.compile(rf"\b{abbr}\.", re.IGNORECASE), full)
    for abbr, full in [
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"),
        ("jr", "junior"), ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"),
        ("lt", "lieutenant"), ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"),
        ("esq", "esquire"), ("ltd", "limited"), ("col", "colonel"), ("ft", "fort"),
    ]
]


def to_ascii(text: str) -> str:
    """Transliterate to ASCII (é -> e, “ -> ")."""
    from unidecode import unidecode

    return unidecode(text)


def expand_abbreviations(text: str) -> str:
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text)


def english_cleaners(text: str) -> str:
    """ASCII, lower case, numbers and abbreviations spelled out, whitespace runs collapsed."""
    text = to_ascii(text).lower()
    text = normalize_numbers(text)
    text = expand_abbreviations(text)
    return collapse_whitespace(text)
