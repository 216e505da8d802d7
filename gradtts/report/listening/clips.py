"""Compact copies of the page's clips: mono, resampled, compressed (OGG/Vorbis by default), named by content.

A copy's name is a digest of the source file's bytes and of the conversion settings, so a re-run reuses
every copy whose source did not change (nothing is converted twice, nothing is duplicated), and the name
says nothing about which arm made the clip (the blind A/B trials stay blind in the page's source).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

AUDIO_DIR = "audio"
# name -> (libsndfile format, subtype, extension); all play in current browsers (file:// included).
FORMATS = {
    "ogg": ("OGG", "VORBIS", ".ogg"),
    "mp3": ("MP3", "MPEG_LAYER_III", ".mp3"),
    "flac": ("FLAC", "PCM_16", ".flac"),
    "wav": ("WAV", "PCM_16", ".wav"),
}
# The names this module gives its copies; only such files are ever removed from the audio folder.
_COPY_NAME = re.compile(r"^[0-9a-f]{16}\.(ogg|mp3|flac|wav)$")


@dataclass(frozen=True)
class ClipFormat:
    """How copies are written: format name, libsndfile format and subtype, extension, rate, compression."""

    name: str
    sf_format: str
    subtype: str
    ext: str
    sample_rate: int
    compression: float | None   # libsndfile's 0 (best quality) .. 1 (smallest); None for PCM formats

    def key(self) -> str:
        return f"{self.sf_format}/{self.subtype}/{self.sample_rate}/{self.compression}"


def resolve_format(name: str, sample_rate: int = 22050, compression: float = 0.6) -> ClipFormat:
    """The :class:`ClipFormat` for ``name``; falls back to 16-bit WAV (with a warning) when the installed
    libsndfile cannot write ``name``."""
    import soundfile as sf

    if name not in FORMATS:
        raise ValueError(f"--format {name!r}: one of {', '.join(FORMATS)}")
    if not 0 <= compression <= 1:
        raise ValueError(f"--compression {compression}: between 0 (best quality) and 1 (smallest files)")
    if sample_rate < 8000:
        raise ValueError(f"--sample-rate {sample_rate}: at least 8000 Hz")
    fmt, subtype, ext = FORMATS[name]
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        log.warning("libsndfile %s cannot write %s/%s: writing 16-bit WAV instead (larger files)",
                    sf.__libsndfile_version__, fmt, subtype)
        name, (fmt, subtype, ext) = "wav", FORMATS["wav"]
    lossy = subtype in ("VORBIS", "MPEG_LAYER_III")
    return ClipFormat(name, fmt, subtype, ext, int(sample_rate), float(compression) if lossy else None)


def copy_name(src: Path, fmt: ClipFormat) -> str:
    """The copy's file name: 16 hex digits of sha256(source bytes, settings), then the extension."""
    from gradtts.digest import file_digest

    digest = hashlib.sha256(f"{file_digest(src)}|{fmt.key()}".encode()).hexdigest()
    return digest[:16] + fmt.ext


def convert(src: Path, out_dir: Path, fmt: ClipFormat) -> tuple[str, bool]:
    """Write the compact copy of ``src`` into ``out_dir`` unless it is there; returns (file name, converted)."""
    import soundfile as sf

    from gradtts.audio import load_audio
    from gradtts.io import atomic_path

    name = copy_name(src, fmt)
    dst = out_dir / name
    if dst.is_file():
        return name, False
    wav, sr = load_audio(src, fmt.sample_rate)
    with atomic_path(dst) as tmp:
        # The temporary name has no audio extension: soundfile must be told the format.
        sf.write(str(tmp), wav, sr, format=fmt.sf_format, subtype=fmt.subtype, compression_level=fmt.compression)
    return name, True


def remove_unused(out_dir: Path, keep: set[str]) -> int:
    """Delete this module's copies in ``out_dir`` that the page no longer uses; returns how many."""
    n = 0
    for f in sorted(out_dir.glob("*")):
        if f.is_file() and _COPY_NAME.match(f.name) and f.name not in keep:
            f.unlink()
            n += 1
    return n
