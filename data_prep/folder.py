"""Your own recordings -> Kaldi data dir, from speaker folders or from a CSV.

    python -m data_prep.folder CORPUS_ROOT DATA_DIR [--encoding utf-8] [--speakers A B]
                               [--max-utts-per-speaker N] [--seed S]
    python -m data_prep.folder --csv FILE DATA_DIR [--encoding utf-8] [--speakers ...]

Folder layout: one sub-folder per speaker, holding ``<utt>.wav`` (or .flac/.ogg/.mp3) and ``<utt>.txt`` side
by side (deeper sub-folders are searched too). CSV layout: a header row with columns ``path,text,speaker``
(others ignored); relative paths are resolved against the CSV's folder. Speaker ids are sanitised
(whitespace and '/' become '_'); utterance ids are ``<speaker>-<path below the speaker folder or the CSV's
folder, without extension, '/' -> '_'>``. Audio without a transcript is skipped and counted; a CSV row
whose audio is missing is an error naming the row.

Transcripts and the CSV are read as UTF-8 (a leading byte-order mark is allowed); a byte that is not
valid UTF-8 is an error naming the file and line, never silently replaced. Files in another encoding
are read with ``--encoding`` (e.g. ``--encoding latin-1`` or ``cp1252``); the data dir is always UTF-8.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

from data_prep.common import (Collector, PrepError, add_selection_args, check_encoding, check_root, decode,
                              read_text, run, sanitise_id)

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")
CSV_COLUMNS = ("path", "text", "speaker")


def _speaker(name: str, where: str, ids: dict[str, str]) -> str:
    spk = sanitise_id(name)
    if not spk:
        raise PrepError(f"{where}: empty speaker name")
    if ids.setdefault(spk, name) != name:
        raise PrepError(f"{where}: speakers {ids[spk]!r} and {name!r} both become id {spk!r}; rename one")
    return spk


def _utt(spk: str, rel: Path) -> str:
    return f"{spk}-{sanitise_id(str(rel.with_suffix('')).replace(os.sep, '/'))}"


def _hint(encoding: str) -> str:
    """What to do about an undecodable file, given the encoding that was tried."""
    other = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "the file's real encoding"
    return (f"pass --encoding with the encoding the files were saved in (e.g. --encoding {other}), "
            "or convert them to UTF-8")


def from_folders(c: Collector, root: Path, encoding: str = "utf-8") -> None:
    ids: dict[str, str] = {}
    for folder in sorted(q for q in root.iterdir() if q.is_dir() and not q.name.startswith(".")):
        spk = _speaker(folder.name, str(folder), ids)
        if not c.wants(spk):
            continue
        for audio in sorted(q for q in folder.rglob("*") if q.suffix.lower() in AUDIO_EXTS and q.is_file()):
            txt = audio.with_suffix(".txt")
            if not txt.is_file():
                c.skip("audio files without .txt", audio)
                continue
            c.add(_utt(spk, audio.relative_to(folder)), spk, audio, read_text(txt, encoding, _hint(encoding)),
                  origin=str(audio))


def from_csv(c: Collector, path: Path, encoding: str = "utf-8") -> None:
    base = path.parent.resolve()
    ids: dict[str, str] = {}
    # Decoded as a whole first, so that a bad byte is reported with its line, not as a bare
    # UnicodeDecodeError from inside the csv module.
    text = decode(path.read_bytes(), path, encoding, _hint(encoding))
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in CSV_COLUMNS if k not in (reader.fieldnames or [])]
        if missing:
            raise PrepError(f"{path}:1: header must name the columns {','.join(CSV_COLUMNS)}; "
                            f"missing {', '.join(missing)} (header: {','.join(reader.fieldnames or [])})")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            spk = _speaker(row["speaker"] or "", where, ids)
            if not c.wants(spk):
                continue
            rel = Path((row["path"] or "").strip())
            if not str(rel) or str(rel) == ".":
                raise PrepError(f"{where}: empty path")
            audio = rel if rel.is_absolute() else base / rel
            if not audio.is_file():
                raise PrepError(f"{where}: audio file {audio} not found (relative paths are resolved against "
                                f"{base})")
            name = Path(rel.name) if rel.is_absolute() else rel
            c.add(_utt(spk, name), spk, audio, row["text"] or "", origin=where)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.folder", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="[CORPUS_ROOT] DATA_DIR",
                   help="speaker-folder root and output data dir (only the data dir with --csv)")
    p.add_argument("--csv", default=None, metavar="FILE", help="read utterances from a path,text,speaker CSV")
    p.add_argument("--encoding", default="utf-8", metavar="ENC",
                   help="encoding of the .txt transcripts and the CSV (default utf-8; e.g. latin-1, cp1252)")
    add_selection_args(p)
    a = p.parse_args(argv)
    if len(a.paths) != (1 if a.csv else 2):
        p.error("give CORPUS_ROOT DATA_DIR, or --csv FILE DATA_DIR")
    a.data_dir = a.paths[-1]
    check_encoding(a.encoding)
    c = Collector("folder", a)
    if a.csv:
        a.corpus_root = a.csv
        if not Path(a.csv).is_file():
            raise PrepError(f"{a.csv}: CSV file not found")
        from_csv(c, Path(a.csv), a.encoding)
    else:
        a.corpus_root = a.paths[0]
        from_folders(c, check_root(a.corpus_root, "one sub-folder per speaker with <utt>.wav + <utt>.txt"),
                     a.encoding)
    c.finish(a.data_dir)
    return 0


if __name__ == "__main__":
    run(main)
