"""HiFi-GAN mel front end and audio loading."""

import logging
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from librosa.filters import mel as librosa_mel

from gradtts.audio import AudioError, clipping_fraction, load_audio, write_wav
from gradtts.features import DEFAULT_MEL, mel_from_file, mel_spectrogram


def _reference_mel_numpy(wav: np.ndarray) -> np.ndarray:
    """HiFi-GAN's definition written out in float64 numpy, independently of torch.stft."""
    pad = (1024 - 256) // 2
    y = np.pad(wav.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = (len(y) - 1024) // 256 + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    frames = np.stack([y[i * 256:i * 256 + 1024] * window for i in range(n_frames)], axis=1)
    spec = np.fft.rfft(frames, axis=0)
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
    basis = librosa_mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000).astype(np.float64)
    return np.log(np.maximum(basis @ mag, 1e-5))


def _reference_mel_torch_legacy(wav: torch.Tensor) -> torch.Tensor:
    """HiFi-GAN's code path with the legacy real-valued STFT output (sum of squares over the last axis)."""
    y = torch.nn.functional.pad(wav.unsqueeze(1), (384, 384), mode="reflect").squeeze(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = torch.stft(y, 1024, hop_length=256, win_length=1024, window=torch.hann_window(1024), center=False,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=False)
    spec = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
    basis = torch.from_numpy(librosa_mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)).float()
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))


def test_mel_matches_hifigan_definition():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(22050 * 2) / 22050
    wav = torch.stack([0.5 * torch.sin(2 * np.pi * 220 * t) + 0.05 * torch.randn(len(t), generator=g),
                       0.3 * torch.randn(len(t), generator=g)]).float()
    mel = mel_spectrogram(wav)
    assert mel.shape == (2, 80, DEFAULT_MEL.n_frames(wav.shape[1])) == (2, 80, 172)
    assert torch.equal(mel, _reference_mel_torch_legacy(wav))
    ref = _reference_mel_numpy(wav[0].numpy())
    assert np.max(np.abs(mel[0].numpy() - ref)) < 2e-4


def test_silence_floors_at_log_1e_minus_5():
    mel = mel_spectrogram(torch.zeros(1, 4096))
    assert torch.allclose(mel, torch.full_like(mel, np.log(1e-5)))


def test_load_audio_downmixes_and_resamples(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    stereo = np.stack([0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 300 * t)], axis=1)
    sf.write(tmp_path / "a.flac", stereo, sr)
    wav, out_sr = load_audio(tmp_path / "a.flac")
    assert out_sr == 22050 and abs(len(wav) - 22050) <= 1
    assert wav.dtype == np.float32
    assert abs(np.max(np.abs(wav[1000:-1000])) - 0.3) < 0.01  # mean of the two channels


def test_write_wav_round_trip(tmp_path):
    x = (0.5 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    write_wav(tmp_path / "o.wav", x, 22050)
    info = sf.info(tmp_path / "o.wav")
    assert info.subtype == "PCM_16" and info.samplerate == 22050
    y, _ = load_audio(tmp_path / "o.wav")
    assert np.max(np.abs(x - y)) < 1.0 / 32767 + 1e-6
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("content, why", [(b"", "cannot be read"), (b"not audio at all" * 10, "cannot be read")])
def test_bad_files_name_the_file(tmp_path, content, why):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=r"bad\.wav.*" + why):
        load_audio(p)
    with pytest.raises(AudioError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_empty_audio_and_clipping(tmp_path, caplog):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match=r"empty\.wav.*no samples"):
        load_audio(tmp_path / "empty.wav")
    loud = np.clip(3 * np.sin(np.linspace(0, 300, 22050)), -1, 1).astype(np.float32)
    sf.write(tmp_path / "loud.wav", loud, 22050)
    caplog.set_level(logging.WARNING, logger="gradtts.audio")
    for _ in range(2):  # a condition met twice is logged twice (a UserWarning was shown once per place)
        mel_from_file(tmp_path / "loud.wav")
    frac = clipping_fraction(load_audio(tmp_path / "loud.wav")[0])
    assert 0.5 < frac < 1  # 3 sin(x) clipped at full scale: most samples sit at +-1
    expected = (f"{tmp_path / 'loud.wav'}: {100 * frac:.2f}% of samples are clipped or beyond full scale "
                "(peak 1.000); mels of clipped audio are distorted")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, expected)] * 2
