"""Fidelity of generated speech to the target's real recording of the same sentence.

    from gradtts.scoring.fidelity import fidelity, mcd_dtw, log_f0_rmse
    res = fidelity("runs/x/step_0000120", {"19-198-0001": "/data/19-198-0001.flac", ...})
    res["mean"]["mcd_db"], res["mean"]["log_f0_rmse_cents"], res["rows"][0]

Speaker similarity says whose voice it is; these say how close the speech is to what the speaker
actually said. Both signals are analysed identically:

1. **Rate and silence.** Audio is resampled to 22050 Hz (``gradtts.audio.SAMPLE_RATE``) and leading and
   trailing silence quieter than ``trim_db`` (40 dB) below the signal's own peak is cut
   (``gradtts.audio.trim_silence``: librosa's frame RMS, frames of 1024, hop 256). Trimming both sides
   keeps a generated clip's extra lead-in or tail from being charged as spectral distortion; pauses
   inside the utterance stay and DTW aligns them. ``trim_db=None`` disables it.
2. **Frames.** One grid for every feature: hop 256, window 1024 (periodic Hann), frames centred at
   sample ``256 * i`` (zero padding at the ends), ``1 + n_samples // 256`` frames. The spectral and
   the F0 analyses share it, so a DTW path over cepstral frames indexes the F0 tracks too.
3. **Mel cepstrum.** The toolkit's mel settings (``gradtts.features.DEFAULT_MEL``: 80 Slaney mel bands,
   0-8000 Hz) on the STFT magnitude, natural log with the HiFi-GAN floor ``log(max(x, 1e-5))``; then
   the orthonormal DCT-II over the bands (``librosa.feature.mfcc``), scaled by ``sqrt(2 / 80)``, and
   coefficients ``c_1 .. c_24`` kept (``n_cep``; ``c_0``, the frame's overall level, is dropped).
   The scaling is the one-sided cepstrum convention of SPTK's mel-cepstra,
   ``ln A(w_m) ~ c_0 + sum_d c_d cos(d w_m)`` over the band centres, which is what the MCD constant
   assumes.
4. **MCD.** Per aligned frame pair ``(10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` dB. With the scaling
   above this is, by Parseval, the RMS over the 80 mel bands of the difference of the two log-mel
   power spectra in dB after removing each frame's mean level, smoothed to 24 cepstral coefficients
   (with ``n_cep=79`` it is exactly that RMS; a test checks the identity). The numbers are therefore
   *not* those of an SPTK/WORLD mel-cepstrum MCD (all-pass warped, different spectral envelope) and are
   comparable within this toolkit only.
5. **DTW.** ``librosa.sequence.dtw`` on the cepstra (generated x reference), Euclidean local cost, steps
   (1,1), (1,0), (0,1) with unit weights, no band constraint. The Euclidean distance between cepstra
   is the frame MCD divided by a constant, so the path is the one that minimises the summed frame
   MCD. ``mcd_db`` is the mean over the path's frame pairs (``path_len`` of them).
6. **F0.** ``librosa.pyin`` with 50-600 Hz (covers low male to high female and child voices), frame
   1024 (over two periods of 50 Hz), 0.1-semitone (10-cent) pitch bins, on the grid above. The F0 tracks are
   compared along the *same* DTW path (computed on the cepstra): the spectral envelope aligns the
   phones, and a separate alignment on F0 would align the very pitch errors it is meant to measure.
   pyin's Viterbi decoding labels runs of pure noise voiced (a single voiced state with the 1 % "no
   trough" probability beats the unvoiced probability spread over all pitch bins): one second of white
   noise came out 0-68 % "voiced" over four seeds, and so did the -33 dB room noise before and after the
   sentence of the LibriSpeech test reading, at 400-600 Hz. A frame therefore counts as voiced only when
   pyin says so *and* its voiced probability is at least ``voiced_prob_min`` (0.05: YIN found a periodic
   trough under at least 5 % of pyin's threshold prior; frames without any trough sit at 0.01).
   ``voiced_prob_min=0`` keeps pyin's flags.
   ``log_f0_rmse`` is the RMS of ``ln f0_gen - ln f0_ref`` over path pairs voiced in both
   (``n_voiced``), also given in cents (``1200 / ln 2`` times it; ``nan`` when ``n_voiced`` is 0); ``vde``
   (voicing decision error) is the share of path pairs in which exactly one side is voiced.

Timing (one thread, 2-core development machine): pyin is the cost, about 0.3 CPU-s per 3-second
utterance and signal (warm; the first call in a process adds about 1.5 s of numba loading); mel
cepstra and DTW take a few milliseconds. :func:`fidelity` analyses each reference once per call, and a
``cache`` dict passed by the caller keeps reference analyses across calls (e.g. over a study's runs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gradtts.audio import SAMPLE_RATE, AudioError, load_audio, resample, trim_silence
from gradtts.features import DEFAULT_MEL

HOP = DEFAULT_MEL.hop_length
N_FFT = DEFAULT_MEL.n_fft
N_CEP = 24
TRIM_DB = 40.0
F0_MIN = 50.0
F0_MAX = 600.0
VOICED_PROB_MIN = 0.05
LOG_FLOOR = 1e-5
#: (10 / ln 10) * sqrt(2): frame MCD in dB per unit of Euclidean distance between cepstra
MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)
CENTS_PER_NEPER = 1200.0 / math.log(2.0)
SILENT_PEAK = 1e-4


@dataclass(frozen=True)
class Analysis:
    """Frame-synchronous features of one signal: cepstra ``[T, n_cep]``, F0 in Hz ``[T]`` (nan when
    unvoiced) and the voicing flags ``[T]``; F0 fields are None when not computed."""

    cep: np.ndarray
    f0: np.ndarray | None = None
    voiced: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.cep.shape[0])


def prepare(wav: np.ndarray, sr: int, trim_db: float | None = TRIM_DB, name: str = "signal") -> np.ndarray:
    """Float32 mono at 22050 Hz with leading/trailing silence cut; :class:`AudioError` naming ``name``
    when the signal is empty, not finite, silent, or shorter than one analysis window after trimming."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if wav.size == 0:
        raise AudioError(f"{name}: the audio holds no samples")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if float(np.max(np.abs(wav))) < SILENT_PEAK:
        raise AudioError(f"{name}: the audio is silent (peak below {SILENT_PEAK:g})")
    if sr != SAMPLE_RATE:
        wav = resample(wav, sr, SAMPLE_RATE)
    if trim_db is not None:
        wav = trim_silence(wav, SAMPLE_RATE, top_db=trim_db)
    if wav.size < N_FFT:
        raise AudioError(f"{name}: {wav.size / SAMPLE_RATE:.3f} s of sound after trimming silence; at least "
                         f"{N_FFT / SAMPLE_RATE:.3f} s is needed to compare it")
    return np.ascontiguousarray(wav)


def log_mel(wav: np.ndarray) -> np.ndarray:
    """Natural-log mel amplitude ``[T, 80]`` of a prepared 22050 Hz signal on the shared frame grid."""
    import librosa

    cfg = DEFAULT_MEL
    mel = librosa.feature.melspectrogram(y=wav, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                         win_length=cfg.win_length, window="hann", center=True,
                                         pad_mode="constant", power=1.0, n_mels=cfg.n_mels, fmin=cfg.f_min,
                                         fmax=cfg.f_max, norm="slaney", htk=False)
    return np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float64)


def mel_cepstrum(wav: np.ndarray, sr: int = SAMPLE_RATE, n_cep: int = N_CEP, trim_db: float | None = TRIM_DB,
                 name: str = "signal") -> np.ndarray:
    """Mel cepstrum ``c_1 .. c_n_cep`` ``[T, n_cep]`` of ``wav`` as defined in the module docstring."""
    return _cepstrum(log_mel(prepare(wav, sr, trim_db, name)), n_cep)


def _cepstrum(lm: np.ndarray, n_cep: int) -> np.ndarray:
    import librosa

    n_mels = lm.shape[1]
    if not 1 <= n_cep < n_mels:
        raise ValueError(f"n_cep={n_cep}: choose 1 .. {n_mels - 1} coefficients (c_0 is always dropped)")
    c = librosa.feature.mfcc(S=lm.T, n_mfcc=n_cep + 1, dct_type=2, norm="ortho")
    return (c[1:].T * math.sqrt(2.0 / n_mels)).astype(np.float64)


def frame_mcd(c_a: np.ndarray, c_b: np.ndarray) -> np.ndarray:
    """MCD in dB of each row pair of two equally long cepstrum matrices ``[T, n_cep]``."""
    return MCD_CONST * np.sqrt(np.sum((np.asarray(c_a) - np.asarray(c_b)) ** 2, axis=1))


def dtw_path(c_gen: np.ndarray, c_ref: np.ndarray) -> np.ndarray:
    """DTW path ``[L, 2]`` of (generated frame, reference frame) pairs, start to end, Euclidean cost."""
    import librosa

    _, wp = librosa.sequence.dtw(X=np.asarray(c_gen).T, Y=np.asarray(c_ref).T, metric="euclidean")
    return np.ascontiguousarray(wp[::-1])


def f0_track(wav: np.ndarray, fmin: float = F0_MIN, fmax: float = F0_MAX,
             voiced_prob_min: float = VOICED_PROB_MIN) -> tuple[np.ndarray, np.ndarray]:
    """pyin F0 (Hz, nan when unvoiced) and voicing flags of a prepared 22050 Hz signal, on the shared grid.

    Voiced: pyin's Viterbi flag and a voiced probability of at least ``voiced_prob_min`` (module docstring).
    """
    import librosa

    f0, flag, prob = librosa.pyin(wav, fmin=fmin, fmax=fmax, sr=SAMPLE_RATE, frame_length=N_FFT, hop_length=HOP,
                                  center=True, pad_mode="constant")
    voiced = flag.astype(bool) & (prob >= voiced_prob_min)
    return np.where(voiced, f0, np.nan).astype(np.float64), voiced


def analyse(wav: np.ndarray, sr: int = SAMPLE_RATE, *, n_cep: int = N_CEP, trim_db: float | None = TRIM_DB,
            f0: bool = True, fmin: float = F0_MIN, fmax: float = F0_MAX, voiced_prob_min: float = VOICED_PROB_MIN,
            name: str = "signal") -> Analysis:
    """Cepstra and (with ``f0``) the pyin track of one signal, frame-synchronous."""
    y = prepare(wav, sr, trim_db, name)
    cep = _cepstrum(log_mel(y), n_cep)
    if not f0:
        return Analysis(cep)
    track, voiced = f0_track(y, fmin, fmax, voiced_prob_min)
    n = min(len(track), cep.shape[0])  # equal by construction (both 1 + len // hop); guard anyway
    return Analysis(cep[:n], track[:n], voiced[:n])


def compare_analyses(gen: Analysis, ref: Analysis) -> dict:
    """MCD after DTW and, when both carry F0, log-F0 RMSE and voicing error along the same path."""
    path = dtw_path(gen.cep, ref.cep)
    g, r = path[:, 0], path[:, 1]
    out = {"mcd_db": float(frame_mcd(gen.cep[g], ref.cep[r]).mean()), "n_frames_gen": gen.n_frames,
           "n_frames_ref": ref.n_frames, "path_len": int(len(path))}
    if gen.f0 is None or ref.f0 is None:
        return out
    vg, vr = gen.voiced[g], ref.voiced[r]
    both = vg & vr
    n_voiced = int(both.sum())
    if n_voiced:
        d = np.log(gen.f0[g][both]) - np.log(ref.f0[r][both])
        rmse = float(np.sqrt(np.mean(d ** 2)))
    else:
        rmse = float("nan")
    out.update(log_f0_rmse=rmse, log_f0_rmse_cents=rmse * CENTS_PER_NEPER, vde=float(np.mean(vg ^ vr)),
               n_voiced=n_voiced)
    return out


def mcd_dtw(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = SAMPLE_RATE, *, n_cep: int = N_CEP,
            trim_db: float | None = TRIM_DB) -> dict:
    """Mel-cepstral distortion (dB) of ``gen_wav`` against ``ref_wav`` (both at ``sr``) after DTW.

    Returns ``mcd_db`` (mean frame MCD over the DTW path), ``n_frames_gen``, ``n_frames_ref``, ``path_len``.
    """
    gen = analyse(gen_wav, sr, n_cep=n_cep, trim_db=trim_db, f0=False, name="generated signal")
    ref = analyse(ref_wav, sr, n_cep=n_cep, trim_db=trim_db, f0=False, name="reference signal")
    return compare_analyses(gen, ref)


def log_f0_rmse(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = SAMPLE_RATE, *, fmin: float = F0_MIN,
                fmax: float = F0_MAX, voiced_prob_min: float = VOICED_PROB_MIN, n_cep: int = N_CEP,
                trim_db: float | None = TRIM_DB) -> dict:
    """Log-F0 RMSE over frames voiced in both, along the cepstral DTW path, and the voicing decision error.

    Returns ``log_f0_rmse`` (natural log), ``log_f0_rmse_cents``, ``vde``, ``n_voiced`` (pairs voiced in
    both), ``path_len``, ``n_frames_gen``, ``n_frames_ref``.
    """
    kw = dict(n_cep=n_cep, trim_db=trim_db, fmin=fmin, fmax=fmax, voiced_prob_min=voiced_prob_min)
    gen = analyse(gen_wav, sr, name="generated signal", **kw)
    ref = analyse(ref_wav, sr, name="reference signal", **kw)
    out = compare_analyses(gen, ref)
    del out["mcd_db"]
    return out


def analysis_settings(n_cep: int = N_CEP, trim_db: float | None = TRIM_DB, fmin: float = F0_MIN,
                      fmax: float = F0_MAX, voiced_prob_min: float = VOICED_PROB_MIN) -> dict:
    """Every setting a :func:`fidelity` number depends on (the analysis grid included), e.g. for a cache key."""
    return {"n_cep": n_cep, "trim_db": trim_db, "fmin": fmin, "fmax": fmax, "voiced_prob_min": voiced_prob_min,
            "sample_rate": SAMPLE_RATE, "hop_length": HOP, "n_fft": N_FFT, "n_mels": DEFAULT_MEL.n_mels,
            "f_max": DEFAULT_MEL.f_max}


def _file_key(path: Path, settings: tuple) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns) + settings


def _analyse_file(path: Path, utt: str, role: str, settings: tuple, cache: dict | None) -> Analysis:
    n_cep, trim_db, fmin, fmax, voiced_prob_min = settings
    key = None
    if cache is not None and path.is_file():
        key = _file_key(path, settings)
        if key in cache:
            return cache[key]
    try:
        wav, sr = load_audio(path, SAMPLE_RATE)
        res = analyse(wav, sr, n_cep=n_cep, trim_db=trim_db, fmin=fmin, fmax=fmax,
                      voiced_prob_min=voiced_prob_min, name=str(path))
    except AudioError as exc:
        raise AudioError(f"utterance {utt!r} ({role}): {exc}") from exc
    if key is not None:
        cache[key] = res
    return res


def fidelity(gen_dir: str | os.PathLike, ref_wavs: Mapping[str, str | os.PathLike], *,
             utts: Sequence[str] | None = None, n_cep: int = N_CEP, trim_db: float | None = TRIM_DB,
             fmin: float = F0_MIN, fmax: float = F0_MAX, voiced_prob_min: float = VOICED_PROB_MIN,
             cache: dict | None = None) -> dict:
    """Compare every ``<utt>.wav`` in ``gen_dir`` (or only ``utts``) with ``ref_wavs[utt]``.

    Returns ``{"rows": [...], "mean": {...}, "n_utts": N, "settings": {...}}``: one row per utterance
    (``utt``, ``gen``, ``ref`` paths and the fields of :func:`mcd_dtw` and :func:`log_f0_rmse`), and means
    over utterances of ``mcd_db``, ``vde`` and of the log-F0 RMSEs (these over the utterances with voiced
    frames in common, counted in ``mean["n_f0_utts"]``). Raises :class:`AudioError` naming the utterance
    and file when a reference is missing or a file is unreadable, silent or too short.
    """
    gen_dir = Path(gen_dir)
    if not gen_dir.is_dir():
        raise AudioError(f"{gen_dir}: no such directory of generated wavs")
    if utts is None:
        utts = sorted(p.stem for p in gen_dir.glob("*.wav"))
        if not utts:
            raise AudioError(f"{gen_dir}: no generated <utt>.wav files to compare")
    settings = (n_cep, trim_db, fmin, fmax, voiced_prob_min)
    refs_seen: dict = {} if cache is None else cache
    rows = []
    for utt in utts:
        gen_path = gen_dir / f"{utt}.wav"
        if utt not in ref_wavs:
            raise AudioError(f"{gen_path}: utterance {utt!r} has no reference recording; give the target's real "
                             f"recording of the same sentence in ref_wavs (it has {len(ref_wavs)} utterances)")
        ref_path = Path(ref_wavs[utt])
        ref = _analyse_file(ref_path, utt, "reference", settings, refs_seen)
        gen = _analyse_file(gen_path, utt, "generated", settings, None)
        rows.append({"utt": utt, "gen": str(gen_path), "ref": str(ref_path), **compare_analyses(gen, ref)})
    mean: dict = {"mcd_db": float(np.mean([r["mcd_db"] for r in rows])),
                  "vde": float(np.mean([r["vde"] for r in rows]))}
    f0_rows = [r for r in rows if r["n_voiced"] > 0]
    for k in ("log_f0_rmse", "log_f0_rmse_cents"):
        mean[k] = float(np.mean([r[k] for r in f0_rows])) if f0_rows else float("nan")
    mean["n_f0_utts"] = len(f0_rows)
    return {"rows": rows, "mean": mean, "n_utts": len(rows),
            "settings": analysis_settings(n_cep, trim_db, fmin, fmax, voiced_prob_min)}
