"""Cut ``cmu_dictionary-gradtts-subset.txt``: the entries of the official Grad-TTS CMUdict that the text tests read.

The official file (``resources/cmu_dictionary`` of the Grad-TTS repository, 3.7 MB) is not part of this
repository; the golden-id tests only need the pronunciations of the words in their sentences. The subset
keeps the file's CMUdict header (its licence asks for the notice to travel with the data), then every line of
every word those sentences make the front end look up, all variants, byte for byte and in the file's order, so
the first pronunciation of each word is the official one.

Regenerate from the repository root, with the official file beside the checkout::

    python tests/data/make_dictionary_subset.py ../shared/reference/cmu_dictionary-gradtts.txt

``tests/test_text.py`` re-runs :func:`cut_subset` on the official file when it is present and checks that the
result equals the committed subset, and that :data:`SENTENCES` are its golden sentences.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import string
import sys
from pathlib import Path

from gradtts.io import atomic_write_bytes
from gradtts.text import english_cleaners
from gradtts.text.cmudict import OFFICIAL_CMUDICT_SHA256

HERE = Path(__file__).resolve().parent
SUBSET = HERE / "cmu_dictionary-gradtts-subset.txt"

#: The golden sentences of tests/test_text.py (ids produced by the official Grad-TTS with its dictionary).
SENTENCES = (
    "Printing, in the only sense with which we are at present concerned.",
    "Dr. Smith paid $3.50 on the 21st of May, 1865!",
    "Turn left on {HH AW1 S T AH0 N} Street",
    "a quick test",
)

_BRACES = re.compile(r"\{.+?\}")
_VARIANT = re.compile(r"\([0-9]+\)$")


def words_of(sentences) -> set[str]:
    """Upper-case words to keep: every cleaned token as the front end looks it up, and without its punctuation.

    The bare forms ("PRINTING" of "printing,") are kept too, so the subset holds the entries that the official
    rule (a token with punctuation attached is spelled, not looked up) must pass over; likewise the words before
    an inline ``{ARPABET}`` span, which are spelled although the dictionary has them.
    """
    words = set()
    for sentence in sentences:
        for token in english_cleaners(_BRACES.sub(" ", sentence)).split():
            words.add(token.upper())
            bare = token.strip(string.punctuation)
            if bare:
                words.add(bare.upper())
    return words


def cut_subset(official: bytes, words: set[str]) -> bytes:
    """The leading ``;;;`` header of ``official``, a note on the cut, then the lines of ``words`` (all variants)."""
    lines = official.decode("latin-1").splitlines(keepends=True)
    n_header = next(i for i, line in enumerate(lines) if not line.startswith(";;;"))
    note = (";;; gradtts-adapt tests/data: a word subset of the file above, the official Grad-TTS\n"
            f";;; resources/cmu_dictionary (sha256 {OFFICIAL_CMUDICT_SHA256[:16]}...), cut by\n"
            ";;; tests/data/make_dictionary_subset.py: every entry, all variants, of the words the\n"
            ";;; golden sentences of tests/test_text.py look up, unchanged and in the file's order.\n"
            ";;;\n")
    body = [line for line in lines[n_header:]
            if _VARIANT.sub("", line.partition("  ")[0]).upper() in words]
    return "".join(lines[:n_header] + [note] + body).encode("latin-1")


def main(argv: list[str] | None = None) -> int:
    """Write the subset from the official file given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("official", type=Path, help="the official cmu_dictionary (sha256 00808e26...)")
    parser.add_argument("--out", type=Path, default=SUBSET, help=f"where to write (default {SUBSET})")
    args = parser.parse_args(argv)
    if not args.official.is_file():
        parser.error(f"{args.official}: no such file; pass the official Grad-TTS resources/cmu_dictionary "
                     "(../shared/reference/cmu_dictionary-gradtts.txt beside a developer checkout)")
    data = args.official.read_bytes()
    if hashlib.sha256(data).hexdigest() != OFFICIAL_CMUDICT_SHA256:
        parser.error(f"{args.official}: sha256 is not the official file's ({OFFICIAL_CMUDICT_SHA256[:16]}...); "
                     "the subset must be cut from the dictionary the official checkpoints were trained with")
    atomic_write_bytes(args.out, cut_subset(data, words_of(SENTENCES)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
