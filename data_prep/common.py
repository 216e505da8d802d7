"""What every corpus preparer shares: the command line, root checks, collection, selection and writing.

A preparer walks its corpus and feeds a :class:`Collector` (``wants`` / ``add`` / ``skip``); the
collector applies the common selection options and writes the data dir atomically in ``finish``.
Common options: ``--speakers S [S ...]`` (only these speakers), ``--max-utts-per-speaker N`` (the first
N in id order, or a seeded random choice with ``--seed S``).
"""

from __future__ import annotations

import argparse
import codecs
import logging
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from gradtts.data.datadir import DataDir, write_datadir
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)


class PrepError(ValueError):
    """A corpus that cannot be prepared as asked; the message names the file/line/speaker."""


def sanitise_id(name: str) -> str:
    """An id without whitespace or path separators (each run of them becomes ``_``)."""
    return re.sub(r"[\s/\\]+", "_", name.strip())


# What to do about a file that is not UTF-8, for preparers without an --encoding option.
ENCODING_HINT = "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > NEW) and prepare again"


def decode(raw: bytes, path: str | Path, encoding: str = "utf-8", hint: str | None = None) -> str:
    """``raw`` (the bytes of ``path``) decoded strictly; a byte that is not ``encoding`` is a :class:`PrepError`.

    Decoding with replacement would train on "caf\ufffd" instead of "café" without a word said, so a wrong
    encoding stops the preparer, naming the file, the line and the bytes. A UTF-8 byte-order mark is dropped.
    """
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        start = max(raw.rfind(b"\n", 0, exc.start) + 1, exc.start - 24)
        near = raw[start:exc.end + 12].split(b"\n")[0]
        what = "UTF-8" if encoding == "utf-8-sig" else encoding
        raise PrepError(f"{path}:{line}: not valid {what} (byte(s) {exc.object[exc.start:exc.end].hex(' ')} "
                        f"in {near!r}); {hint or ENCODING_HINT}") from None


def read_text(path: str | Path, encoding: str = "utf-8", hint: str | None = None) -> str:
    """A transcript file as one line with single spaces, decoded strictly (see :func:`decode`)."""
    return " ".join(decode(Path(path).read_bytes(), path, encoding, hint).split())


def check_encoding(name: str) -> str:
    """``name`` when Python knows the encoding, else a :class:`PrepError`."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise PrepError(f"--encoding {name}: unknown encoding (e.g. utf-8, latin-1, cp1252)") from None
    return name


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """The selection options every preparer takes."""
    g = p.add_argument_group("selection (every corpus)")
    g.add_argument("--speakers", nargs="+", default=None, metavar="S", help="keep only these speakers")
    g.add_argument("--max-utts-per-speaker", type=int, default=None, metavar="N",
                   help="keep at most N utterances per speaker (the first N in id order unless --seed)")
    g.add_argument("--seed", type=int, default=None,
                   help="with --max-utts-per-speaker: a seeded random choice instead of the first N")


def parser(corpus: str, doc: str | None, subsets: bool = False) -> argparse.ArgumentParser:
    """``python -m data_prep.<corpus> CORPUS_ROOT DATA_DIR`` plus the selection options."""
    p = argparse.ArgumentParser(prog=f"python -m data_prep.{corpus}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_root", help="the corpus as unpacked")
    p.add_argument("data_dir", help="Kaldi data dir to write")
    if subsets:
        p.add_argument("--subsets", nargs="+", default=None, metavar="NAME",
                       help="only these sub-folders of the root (e.g. train-clean-100)")
    add_selection_args(p)
    return p


def check_root(path: str | Path, expected: str) -> Path:
    """The corpus root as a directory, or a :class:`PrepError` saying what it should hold."""
    root = Path(path)
    if not root.is_dir():
        raise PrepError(f"{root}: corpus root not found (it should hold {expected})")
    return root


class Collector:
    """Gathers a corpus' utterances, counts what was skipped and why, then selects and writes."""

    def __init__(self, corpus: str, args: argparse.Namespace):
        self.corpus = corpus
        self.speakers = list(args.speakers) if getattr(args, "speakers", None) else None
        self.max_utts = getattr(args, "max_utts_per_speaker", None)
        self.seed = getattr(args, "seed", None)
        if self.max_utts is not None and self.max_utts < 1:
            raise PrepError(f"--max-utts-per-speaker must be at least 1, got {self.max_utts}")
        self.seen: set[str] = set()
        self.items: dict[str, tuple[str, Path, str, str]] = {}
        self.skipped: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def wants(self, spk: str) -> bool:
        """Record that the corpus has speaker ``spk``; True when it is selected."""
        self.seen.add(spk)
        return self.speakers is None or spk in self.speakers

    def skip(self, reason: str, what) -> None:
        """Count one skipped file/line under ``reason`` (the first example is kept for the summary)."""
        self.skipped[reason] += 1
        self.examples.setdefault(reason, str(what))

    def add(self, utt: str, spk: str, audio: str | Path, text: str, origin: str = "") -> None:
        """One utterance; its id must start with the speaker id and be unique."""
        where = f"{origin}: " if origin else ""
        if not utt.startswith(spk):
            raise PrepError(f"{where}utterance id {utt} does not start with its speaker id {spk}")
        if any(c.isspace() for c in utt):
            raise PrepError(f"{where}utterance id {utt!r} contains whitespace")
        if utt in self.items:
            raise PrepError(f"{where}utterance id {utt} occurs twice (first at {self.items[utt][3] or '?'})")
        text = " ".join(text.split())
        if not text:
            self.skip("empty transcripts", origin or utt)
            return
        self.items[utt] = (spk, Path(audio), text, origin)

    def select(self) -> DataDir:
        """The data dir after the speaker and per-speaker limits."""
        if self.speakers is not None:
            missing = [s for s in self.speakers if s not in self.seen]
            if missing:
                raise PrepError(f"speaker(s) {', '.join(missing)} not found in the corpus; available: "
                                f"{', '.join(sorted(self.seen, key=str.encode))}")
        by_spk: dict[str, list[str]] = {}
        for utt, (spk, *_rest) in self.items.items():
            by_spk.setdefault(spk, []).append(utt)
        if self.speakers is not None:
            empty = [s for s in self.speakers if s not in by_spk]
            if empty:
                raise PrepError(f"no usable utterance for speaker(s) {', '.join(empty)}"
                                + self._skip_note())
        if not by_spk:
            raise PrepError(f"no utterance found{self._skip_note()}")
        d = DataDir()
        for spk in sorted(by_spk, key=str.encode):
            utts = sorted(by_spk[spk], key=str.encode)
            if self.max_utts is not None and len(utts) > self.max_utts:
                if self.seed is None:
                    utts = utts[:self.max_utts]
                else:
                    rng = random.Random(f"{self.corpus}-{self.seed}-{spk}")
                    utts = sorted(rng.sample(utts, self.max_utts), key=str.encode)
            for utt in utts:
                _, audio, text, _ = self.items[utt]
                d.add(utt, spk, audio.resolve(), text)
        return d

    def _skip_note(self) -> str:
        if not self.skipped:
            return ""
        return " (skipped: " + "; ".join(f"{n} {r}, e.g. {self.examples[r]}" for r, n in self.skipped.items()) + ")"

    def finish(self, data_dir: str | Path) -> DataDir:
        """Select, write ``data_dir`` atomically and log a summary; nothing is written on error."""
        d = self.select()
        write_datadir(data_dir, d)
        log.info("data_prep.%s: wrote %d utterances of %d speakers to %s", self.corpus, len(d.utts), len(d.speakers),
                 data_dir)
        for reason, n in sorted(self.skipped.items()):
            log.warning("data_prep.%s: skipped %d %s (e.g. %s)", self.corpus, n, reason, self.examples[reason])
        return d


def run(main: Callable[[], int]) -> None:
    """Run a preparer's ``main`` as a command: a :class:`PrepError` is one ``error:`` line and exit status 2."""
    setup_logging()
    try:
        rc = main()
    except PrepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc or 0)
