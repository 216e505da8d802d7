"""Feature manifests: ``FEATS_DIR/manifest.jsonl`` (one utterance per line) + ``meta.json`` + mels.

Each line is ``{"utt", "spk", "text", "tokens", "mel", "frames", "corrupt"}``: ``tokens`` are the model
input ids (interspersed with the blank), ``mel`` the path of a float32 ``[80, frames]`` ``.npy``
relative to the features directory. ``meta.json`` records the text dictionary id (``dictionary``),
``add_blank`` and the mel settings; ``mel_settings.json`` the settings that made the cached mels (the
feature stage's cache key); ``rejects.tsv`` the utterances the feature stage left out, with the reason.

The feature stage writes these files (:func:`write_manifest`, :func:`write_meta`); training reads them
back, checked line by line, with :func:`read_manifest`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from gradtts.io import atomic_open, atomic_write_text

MANIFEST = "manifest.jsonl"
META = "meta.json"
REJECTS = "rejects.tsv"
MEL_SETTINGS = "mel_settings.json"
_REQUIRED = ("utt", "spk", "tokens", "mel", "frames")


class ManifestError(ValueError):
    """A features manifest that cannot be used; the message names the file and line."""


@dataclass
class ManifestEntry:
    """One utterance of a manifest.

    ``mel`` is relative to the features dir as written (:func:`write_manifest` stores it as given) and
    the absolute path of the ``.npy`` once read (:func:`read_manifest` resolves it).
    """

    utt: str
    spk: str
    text: str
    tokens: list[int]
    mel: str | Path
    frames: int
    corrupt: bool = False


@dataclass
class Manifest:
    """The entries of a features dir plus its ``meta.json`` (empty dict when absent)."""

    root: Path
    items: list[ManifestEntry]
    meta: dict

    @property
    def speakers(self) -> list[str]:
        """The distinct speakers, sorted."""
        return sorted({it.spk for it in self.items})

    @property
    def dictionary(self) -> str | None:
        """The id of the text dictionary that made the token ids (``meta.json``), if recorded."""
        return self.meta.get("dictionary")


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read ``FEATS_DIR/manifest.jsonl`` (or a manifest file itself) and check every line.

    Raises :class:`ManifestError` naming the file and line of the first problems found.
    """
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise ManifestError(f"{file}: features manifest not found; run the feature stage "
                            "(python -m data_prep.features DATA_DIR FEATS_DIR) or fix data.feats_dir")
    root = file.parent
    items, errors, seen = [], [], {}
    with open(file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{file}:{n}: not JSON ({exc.msg})")
                continue
            missing = [k for k in _REQUIRED if k not in row]
            if missing:
                errors.append(f"{file}:{n}: missing {missing}")
                continue
            tokens = row["tokens"]
            if not (isinstance(tokens, list) and tokens and all(isinstance(t, int) and t >= 0 for t in tokens)):
                errors.append(f"{file}:{n}: utterance {row['utt']!r} has no valid token ids")
                continue
            if not (isinstance(row["frames"], int) and row["frames"] > 0):
                errors.append(f"{file}:{n}: utterance {row['utt']!r} has frames={row['frames']!r}")
                continue
            if row["utt"] in seen:
                errors.append(f"{file}:{n}: utterance {row['utt']!r} repeats line {seen[row['utt']]}")
                continue
            seen[row["utt"]] = n
            mel = root / row["mel"]
            if not mel.is_file():
                errors.append(f"{file}:{n}: mel file {mel} of utterance {row['utt']!r} is missing")
                continue
            items.append(ManifestEntry(str(row["utt"]), str(row["spk"]), str(row.get("text", "")), tokens, mel,
                                       row["frames"], bool(row.get("corrupt", False))))
    if errors:
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ManifestError(f"{len(errors)} bad line(s) in {file}:\n  " + "\n  ".join(errors[:20]) + more)
    if not items:
        raise ManifestError(f"{file}: no utterances")
    meta_file = root / META
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return Manifest(root, items, meta)


def write_manifest(feats_dir: str | os.PathLike, entries: list[ManifestEntry]) -> None:
    """Write the manifest atomically (the last file a feature run writes)."""
    with atomic_open(Path(feats_dir) / MANIFEST) as f:
        for e in entries:
            f.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")


def write_meta(feats_dir: str | os.PathLike, meta: dict) -> None:
    """Write ``meta.json`` atomically (sorted keys, so a re-run with the same settings gives the same bytes)."""
    atomic_write_text(Path(feats_dir) / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
