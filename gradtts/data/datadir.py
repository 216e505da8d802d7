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

REPLACEMENT_CHAR = "\ufffd"
# Shorter audio cannot hold speech (and gives no mel frame); used by the audio check of validate_datadir.
MIN_AUDIO_SECONDS = 0.01


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
            elif REPLACEMENT_CHAR in text:
                # The mark a decoder leaves for bytes of another encoding: "caf\ufffd" would be trained on.
                out.append(f"text: transcript of {utt} holds U+FFFD replacement characters ({text[:60]!r}): it was "
                           "decoded with the wrong encoding; prepare it again from the original files "
                           "(data_prep.folder --encoding ENC)")
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
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{path.name}:{lineno}: not valid UTF-8 (byte(s) {raw[exc.start:exc.end].hex(' ')} in "
                            f"{raw[max(0, exc.start - 24):exc.end + 12]!r}); data dirs are UTF-8: prepare it again "
                            "(data_prep.folder --encoding ENC) or convert the file with iconv")
            continue
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
    corrupt: set[str] = set()
    if corrupt_file.is_file():
        try:
            corrupt = set(corrupt_file.read_bytes().decode("utf-8").split())
        except UnicodeDecodeError as exc:
            problems.append(f"{corrupt_file}: not valid UTF-8 ({exc}); write it again with write_datadir")
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
    """All problems of the data dir at ``path``: its tables, that it holds utterances and, with
    ``check_audio``, that every audio file opens, is complete and has a plausible duration."""
    path = Path(path)
    if not path.is_dir():
        return [f"{path}: not a directory (a data dir holds wav.scp, text, utt2spk and spk2utt)"]
    d, problems = _read(path)
    if not d.utt2spk and not d.wavs and not d.texts:
        problems.append(f"{path}: holds no utterance (empty wav.scp, text and utt2spk); prepare it again")
    if check_audio:
        for u, w in sorted(d.wavs.items(), key=lambda kv: _c_key(kv[0])):
            why = audio_problem(w)
            if why:
                problems.append(f"wav.scp: audio file {w} of {u} {why}")
    return problems


def audio_problem(path: str | os.PathLike) -> str | None:
    """Why the audio file at ``path`` cannot be used (missing, unreadable, empty, truncated), or None.

    Reads headers only (plus, for compressed formats, the last frames), so a large corpus is checked fast.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return "not found"
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt/unknown formats
        return f"cannot be read as audio ({exc.__class__.__name__}: {exc}); re-export or re-copy it"
    if info.samplerate <= 0:
        return f"has an invalid sample rate ({info.samplerate})"
    if info.format in ("WAV", "WAVEX"):
        # libsndfile quietly clamps the frame count of a cut-off WAV to what the file holds, so compare the
        # size its header declares with the bytes that are there.
        cut = _wav_truncation(path, size)
        if cut:
            declared, held, block = cut
            return (f"is truncated: its header declares {declared // block / info.samplerate:.2f} s of audio but "
                    f"the file holds {held // block / info.samplerate:.2f} s ({held} of {declared} data bytes); "
                    "re-export or re-copy it")
    if info.frames <= 0:
        return "holds no samples"
    if info.frames < MIN_AUDIO_SECONDS * info.samplerate:
        return (f"is implausibly short ({info.frames} samples, {info.frames / info.samplerate * 1000:.1f} ms; "
                f"at least {MIN_AUDIO_SECONDS * 1000:.0f} ms expected)")
    if info.format in ("WAV", "WAVEX"):
        return None
    # Compressed formats: a cut-off file fails (or comes up short) when its last frames are read.
    tail = min(info.frames, 1024)
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(info.frames - tail)
            got = len(f.read(tail, dtype="float32"))
    except Exception as exc:
        return (f"is truncated or corrupt: its last frames cannot be read ({exc.__class__.__name__}: {exc}); "
                "re-export or re-copy it")
    if got < tail:
        return (f"is truncated: its header declares {info.frames} frames but reading stops {tail - got} short; "
                "re-export or re-copy it")
    return None


def _wav_truncation(path: Path, size: int) -> tuple[int, int, int] | None:
    """(declared data bytes, bytes held, bytes per frame) of a RIFF/WAVE file cut short, else None."""
    block = 1
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64/RIFX and the like: not checked
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(24)  # id, size, then (fmt) format, channels, rate, byte rate, block align
            cid, clen = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if cid == b"fmt " and len(chunk) >= 22:
                block = max(1, int.from_bytes(chunk[20:22], "little"))
            elif cid == b"data":
                if clen in (0, 0xFFFFFFFF):
                    return None  # written to a pipe: the size was never filled in
                held = size - pos - 8
                return (clen, held, block) if held < clen else None
            pos += 8 + clen + (clen & 1)
    return None


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
