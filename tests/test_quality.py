"""DNSMOS (gradtts.scoring.quality): real readings score above noisy and Griffin-Lim copies of themselves.

The bundled LibriSpeech reading (tests/data/19-198-0000.flac) never skips; three readers' readings from
../shared/data/librispeech-3spk repeat the ordering on more speech and skip without it. The bounds carry margins
over the values measured with the pinned speechmos/onnxruntime (quoted beside each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gradtts.audio import load_audio, write_wav
from gradtts.features import mel_spectrogram
from gradtts.scoring import quality as Q
from gradtts.vocoder import griffin_lim

READING = Path(__file__).parent / "data" / "19-198-0000.flac"
LIBRI = Path(__file__).resolve().parents[1].parent / "shared/data/librispeech-3spk"
needs_libri = pytest.mark.skipif(not LIBRI.is_dir(), reason="real speech of 3 readers not present: "
                                                            "../shared/data/librispeech-3spk")
# Short readings (under one 9.01 s DNSMOS window each) of the three readers.
LIBRI_IDS = ("19-198-0008", "26-496-0006", "27-124992-0046")


def with_white_noise(wav: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(wav)).astype(np.float32)
    return wav + noise * np.sqrt(np.mean(wav ** 2) / 10 ** (snr_db / 10))


def griffin_lim_copy(path: Path) -> tuple[np.ndarray, int]:
    """The toolkit's fallback vocoder on the reading's own log-mel (random initial phase, seed 0), 22.05 kHz."""
    wav, sr = load_audio(path, 22050)
    return griffin_lim(mel_spectrogram(torch.from_numpy(wav)[None]), seed=0)[0].numpy(), sr


def libri_path(utt: str) -> Path:
    speaker, chapter, _ = utt.split("-")
    return LIBRI / "train-clean-100" / speaker / chapter / f"{utt}.flac"


@pytest.fixture(scope="module")
def reading() -> tuple[np.ndarray, int]:
    return load_audio(READING, Q.SAMPLE_RATE)


@pytest.fixture(scope="module")
def clean(reading) -> dict[str, float]:
    scores = Q.dnsmos(*reading)
    assert set(scores) == set(Q.FIELDS)
    # Measured: SIG 3.53, BAK 3.88, OVRL 3.13, P808 3.53 (studio-quality read speech).
    assert scores["ovrl"] > 3.0 and scores["p808"] > 3.2 and scores["bak"] > 3.5
    return scores


def test_real_reading_scores_above_its_noisy_copy(reading, clean):
    wav, sr = reading
    noisy = Q.dnsmos(with_white_noise(wav, snr_db=10), sr)
    # White noise at 10 dB SNR: BAK 1.82, OVRL 1.90, P808 2.45, SIG 3.24.
    assert clean["bak"] - noisy["bak"] > 1.0
    assert clean["ovrl"] - noisy["ovrl"] > 0.5 and clean["p808"] - noisy["p808"] > 0.5
    assert clean["sig"] - noisy["sig"] > 0.1


def test_real_reading_scores_above_its_griffin_lim_copy(clean):
    gl = Q.dnsmos(*griffin_lim_copy(READING))
    # Griffin-Lim: SIG 3.36, OVRL 2.82, P808 2.78 (phasiness is a signal, not a background, distortion).
    assert clean["sig"] - gl["sig"] > 0.05
    assert clean["ovrl"] - gl["ovrl"] > 0.1 and clean["p808"] - gl["p808"] > 0.3


def test_same_clip_same_numbers_and_files_equal_arrays(tmp_path, reading, clean):
    wav, sr = reading
    assert Q.dnsmos(wav.copy(), sr) == clean
    # The file helper reads and scores the same way (a 16 kHz PCM-16 copy of the same samples).
    path = tmp_path / "copy.wav"
    write_wav(path, wav, sr)
    (from_file,) = Q.dnsmos_files([path])
    assert from_file == pytest.approx(clean, abs=2e-3)
    assert Q.mean_scores([clean, from_file]) == pytest.approx(clean, abs=2e-3)


def test_numbers_are_those_of_speechmos_documented_run(reading, clean):
    from speechmos import dnsmos as speechmos_dnsmos

    wav, sr = reading
    theirs = speechmos_dnsmos.run(wav, sr=sr)  # its own sessions, onnxruntime's default threads
    assert clean == pytest.approx({f: float(theirs[k]) for f, k in Q._SPEECHMOS_KEYS.items()}, abs=1e-4)


def test_bad_input_is_refused_naming_it(tmp_path):
    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(int(0.3 * Q.SAMPLE_RATE), np.float32), Q.SAMPLE_RATE)
    with pytest.raises(Q.QualityAudioError, match=r"short\.wav: 0\.30 s of audio; DNSMOS needs at least 0\.5 s"):
        Q.dnsmos_files([short])
    with pytest.raises(Q.QualityAudioError, match=r"missing\.wav: no such audio file"):
        Q.dnsmos_files([tmp_path / "missing.wav"])
    with pytest.raises(Q.QualityAudioError, match="gen #3: contains NaN"):
        Q.dnsmos(np.full(16000, np.nan, np.float32), 16000, name="gen #3")
    assert all(np.isnan(v) for v in Q.mean_scores([]).values())


@needs_libri
@pytest.mark.slow  # 3 readings x (clean, noisy, Griffin-Lim) through DNSMOS: about 12 CPU-s
def test_three_readers_score_above_their_degraded_copies():
    for utt in LIBRI_IDS:
        wav, sr = load_audio(libri_path(utt), Q.SAMPLE_RATE)
        clean = Q.dnsmos(wav, sr)
        noisy = Q.dnsmos(with_white_noise(wav, snr_db=10), sr)
        gl = Q.dnsmos(*griffin_lim_copy(libri_path(utt)))
        assert clean["ovrl"] > 3.0, (utt, clean)
        assert clean["ovrl"] - noisy["ovrl"] > 0.5 and clean["bak"] - noisy["bak"] > 1.0, (utt, clean, noisy)
        assert clean["ovrl"] - gl["ovrl"] > 0.1 and clean["p808"] - gl["p808"] > 0.3, (utt, clean, gl)
