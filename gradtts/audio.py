"""Audio I/O: robust loading (soundfile), mono down-mix, resampling, atomic 16-bit writes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from gradtts.io import atomic_path

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050


class AudioError(ValueError):
    """Raised for audio that cannot be used; the message names the file."""


def load_audio(path: str | os.PathLike, sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 mono, resampled to ``sample_rate`` (None keeps the file's rate).

    Raises :class:`AudioError` naming the file when it is missing, unreadable, not audio, empty or
    contains non-finite samples.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt/unknown formats
        raise AudioError(f"{path}: cannot be read as audio ({exc.__class__.__name__}: {exc})") from exc
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(wav, dtype=np.float32), int(sr)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of a 1-D float signal."""
    if orig_sr == target_sr:
        return wav
    import librosa

    return librosa.resample(np.asarray(wav, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr,
                            res_type="soxr_hq").astype(np.float32)


def peak_normalize(wav: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scale ``wav`` down so that its peak is at most ``peak``; quieter signals are left untouched."""
    m = float(np.max(np.abs(wav))) if wav.size else 0.0
    return wav * (peak / m) if m > peak else wav


def clipping_fraction(wav: np.ndarray, threshold: float = 0.999) -> float:
    """Fraction of samples whose magnitude reaches ``threshold`` (full scale is 1.0)."""
    if wav.size == 0:
        return 0.0
    return float(np.mean(np.abs(wav) >= threshold))


def check_clipping(wav: np.ndarray, name: str, max_fraction: float = 1e-3) -> None:
    """Log a warning when more than ``max_fraction`` of the samples sit at full scale or beyond."""
    frac = clipping_fraction(wav)
    if frac > max_fraction or (wav.size and float(np.max(np.abs(wav))) > 1.0):
        log.warning("%s: %.2f%% of samples are clipped or beyond full scale (peak %.3f); mels of clipped audio "
                    "are distorted", name, 100 * frac, float(np.max(np.abs(wav))))


def trim_silence(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, top_db: float = 40.0) -> np.ndarray:
    """Cut leading and trailing silence quieter than ``top_db`` below the peak."""
    import librosa

    if wav.size == 0:
        return wav
    trimmed, _ = librosa.effects.trim(wav, top_db=top_db, frame_length=1024, hop_length=256)
    return trimmed


def write_wav(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a float signal in [-1, 1] as 16-bit PCM, atomically (values beyond full scale are clipped)."""
    import soundfile as sf

    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    pcm = np.round(wav * 32767.0).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, sample_rate, subtype="PCM_16", format="WAV")
