"""Kaldi/ESPnet data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` (+ optional ``corrupt``).

Utterance ids are prefixed by their speaker id and every file is sorted in C (byte) order, so that
standard Kaldi tools and ``LC_ALL=C sort -c`` accept the directory. Writing is atomic per file and
``spk2utt`` is always derived from ``utt2spk``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gradtts.io import atomic_write_text

FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


class DataDirError(ValueError):
    """An invalid data directory; the message lists every problem found."""


@dataclass
class DataDir:
    """In-memory data directory: utt -> wav path, utt -> transcript, utt -> speaker, corrupt utts."""

    wavs: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)

    def add(self, utt: str, spk: str, wav: str | os.PathLike, text: str) -> None:
        """Add one utterance; its id must start with the speaker id."""
        self.wavs[utt] = str(wav)
        self.texts[utt] = " ".join(text.split())
        self.utt2spk[utt] = spk

    @property
    def utts(self) -> list[str]:
        return sorted(self.utt2spk, key=_c_key)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utts:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return dict(sorted(out.items(), key=lambda kv: _c_key(kv[0])))

    @property
    def speakers(self) -> list[str]:
        return list(self.spk2utt)

    def subset(self, utts) -> "DataDir":
        """A new data dir holding only ``utts`` (corrupt flags carried along)."""
        keep = set(utts)
        return DataDir({u: w for u, w in self.wavs.items() if u in keep},
                       {u: t for u, t in self.texts.items() if u in keep},
                       {u: s for u, s in self.utt2spk.items() if u in keep},
                       {u for u in self.corrupt if u in keep})

    def problems(self) -> list[str]:
        """Every inconsistency, one message each (empty when valid)."""
        out = []
        for name, table in (("wav.scp", self.wavs), ("text", self.texts)):
            for utt in sorted(set(self.utt2spk) - set(table), key=_c_key):
                out.append(f"{name}: no entry for utterance {utt} (listed in utt2spk)")
            for utt in sorted(set(table) - set(self.utt2spk), key=_c_key):
                out.append(f"utt2spk: no speaker for utterance {utt} (listed in {name})")
        for utt, spk in self.utt2spk.items():
            if not utt.startswith(spk):
                out.append(f"utt2spk: utterance id {utt} does not start with its speaker id {spk} "
                           "(Kaldi sorting needs speaker-prefixed ids)")
            if any(c.isspace() for c in utt) or any(c.isspace() for c in spk):
                out.append(f"utt2spk: whitespace in id {utt!r} / {spk!r}")
        for utt, text in self.texts.items():
            if not text.strip():
                out.append(f"text: empty transcript for {utt}")
        spk_order = [self.utt2spk[u] for u in self.utts]
        if spk_order != sorted(spk_order, key=_c_key):
            bad = next(u for u, a, b in zip(self.utts[1:], spk_order, spk_order[1:]) if _c_key(b) < _c_key(a))
            out.append(f"utt2spk: sorted by utterance, the speakers are out of order at {bad} (Kaldi needs both "
                       "orders to agree: put a separator that sorts low, like '-', after the speaker id)")
        for utt in sorted(self.corrupt - set(self.utt2spk), key=_c_key):
            out.append(f"corrupt: {utt} is not an utterance of this directory")
        return out


def _c_key(s: str) -> bytes:
    return s.encode("utf-8")


def _read_table(path: Path, problems: list[str]) -> dict[str, str]:
    table: dict[str, str] = {}
    prev = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if not value.strip():
            problems.append(f"{path.name}:{lineno}: '{key}' has no value")
            continue
        if key in table:
            problems.append(f"{path.name}:{lineno}: duplicate id {key}")
        if prev is not None and _c_key(key) < _c_key(prev):
            problems.append(f"{path.name}:{lineno}: not C-sorted ({key} after {prev}); "
                            "re-write it with gradtts.data.datadir.write_datadir or LC_ALL=C sort")
        prev = key
        table[key] = value.strip()
    return table


def _read(path: Path) -> tuple[DataDir, list[str]]:
    problems: list[str] = []
    tables = {}
    for name in ("wav.scp", "text", "utt2spk"):
        f = path / name
        if not f.is_file():
            problems.append(f"{f}: missing")
            tables[name] = {}
        else:
            tables[name] = _read_table(f, problems)
    corrupt_file = path / "corrupt"
    corrupt = set(corrupt_file.read_text(encoding="utf-8").split()) if corrupt_file.is_file() else set()
    d = DataDir(tables["wav.scp"], tables["text"], tables["utt2spk"], corrupt)
    spk2utt_file = path / "spk2utt"
    if spk2utt_file.is_file():
        listed = {spk: utts.split() for spk, utts in _read_table(spk2utt_file, problems).items()}
        if listed != d.spk2utt:
            problems.append("spk2utt: does not match utt2spk (regenerate it from utt2spk)")
    elif tables["utt2spk"]:
        problems.append(f"{spk2utt_file}: missing")
    return d, problems + d.problems()


def read_datadir(path: str | os.PathLike, check: bool = True) -> DataDir:
    """Read a data directory; with ``check`` raise :class:`DataDirError` listing all problems."""
    d, problems = _read(Path(path))
    if check and problems:
        raise DataDirError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return d


def validate_datadir(path: str | os.PathLike, check_audio: bool = False) -> list[str]:
    """All problems of the data dir at ``path`` (optionally also audio files that do not exist)."""
    d, problems = _read(Path(path))
    if check_audio:
        problems += [f"wav.scp: audio file {w} of {u} not found" for u, w in sorted(d.wavs.items(), key=lambda kv: _c_key(kv[0]))
                     if not Path(w).is_file()]
    return problems


def write_datadir(path: str | os.PathLike, d: DataDir) -> None:
    """Write ``d`` to ``path`` (C-sorted, atomically per file); refuse an inconsistent directory."""
    problems = d.problems()
    if problems:
        raise DataDirError(f"{path}: refusing to write an invalid data dir:\n  " + "\n  ".join(problems))
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    utts = d.utts
    atomic_write_text(path / "wav.scp", "".join(f"{u} {d.wavs[u]}\n" for u in utts))
    atomic_write_text(path / "text", "".join(f"{u} {d.texts[u]}\n" for u in utts))
    atomic_write_text(path / "utt2spk", "".join(f"{u} {d.utt2spk[u]}\n" for u in utts))
    atomic_write_text(path / "spk2utt", "".join(f"{s} {' '.join(us)}\n" for s, us in d.spk2utt.items()))
    if d.corrupt:
        atomic_write_text(path / "corrupt", "".join(f"{u}\n" for u in sorted(d.corrupt, key=_c_key)))
    elif (path / "corrupt").exists():
        (path / "corrupt").unlink()


def write_filelist(path: str | os.PathLike, d: DataDir, spk2id: dict[str, int] | None = None) -> dict[str, int]:
    """Grad-TTS file list ``wav|text|speaker_index``; returns the speaker map used (sorted ids by default)."""
    spk2id = spk2id or {s: i for i, s in enumerate(d.speakers)}
    missing = sorted(set(d.utt2spk.values()) - set(spk2id))
    if missing:
        raise DataDirError(f"speakers {missing} are not in the given spk2id map")
    atomic_write_text(path, "".join(f"{d.wavs[u]}|{d.texts[u]}|{spk2id[d.utt2spk[u]]}\n" for u in d.utts))
    return spk2id
