"""Feature manifests: ``FEATS_DIR/manifest.jsonl`` (one utterance per line) + ``meta.json`` + mels.

Each line is ``{"utt", "spk", "text", "tokens", "mel", "frames", "corrupt"}``: ``tokens`` are the model
input ids (interspersed with the blank), ``mel`` the path of a float32 ``[80, frames]`` ``.npy``
relative to the features directory. ``meta.json`` records the text dictionary id and mel settings;
``mel_settings.json`` the settings that made the cached mels (the feature stage's cache key).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gradtts.io import atomic_open, atomic_write_text

MANIFEST = "manifest.jsonl"
META = "meta.json"
REJECTS = "rejects.tsv"
MEL_SETTINGS = "mel_settings.json"


@dataclass
class ManifestEntry:
    utt: str
    spk: str
    text: str
    tokens: list[int]
    mel: str
    frames: int
    corrupt: bool = False

    def load_mel(self, feats_dir: str | os.PathLike) -> np.ndarray:
        """The ``[80, frames]`` float32 mel of this utterance."""
        return np.load(Path(feats_dir) / self.mel)


def read_manifest(feats_dir: str | os.PathLike) -> list[ManifestEntry]:
    """Entries of ``feats_dir/manifest.jsonl``; errors name the file and line."""
    path = Path(feats_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m data_prep.features DATA_DIR {feats_dir}` first")
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(ManifestEntry(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}:{lineno}: not a manifest entry ({exc})") from exc
    return entries


def write_manifest(feats_dir: str | os.PathLike, entries: list[ManifestEntry]) -> None:
    """Write the manifest atomically (the last file a feature run writes)."""
    with atomic_open(Path(feats_dir) / MANIFEST) as f:
        for e in entries:
            f.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")


def read_meta(feats_dir: str | os.PathLike) -> dict:
    path = Path(feats_dir) / META
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_meta(feats_dir: str | os.PathLike, meta: dict) -> None:
    atomic_write_text(Path(feats_dir) / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
