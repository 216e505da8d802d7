"""HiFi-GAN's log-mel spectrogram, the acoustic feature of Grad-TTS and of its vocoders.

The numbers must equal HiFi-GAN's ``meldataset.mel_spectrogram`` with ``center=False`` so that
official Grad-TTS checkpoints and HiFi-GAN weights see the features they were trained on:
reflect padding of (n_fft - hop) / 2 samples on both sides, an uncentred STFT with a periodic Hann
window, magnitude sqrt(re^2 + im^2 + 1e-9), Slaney-normalised librosa mel filters, log(max(x, 1e-5)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class MelConfig:
    """STFT and mel-filter settings (Grad-TTS / HiFi-GAN V1 defaults)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0

    def n_frames(self, n_samples: int) -> int:
        """Number of mel frames produced for a signal of ``n_samples`` samples."""
        padded = n_samples + 2 * ((self.n_fft - self.hop_length) // 2)
        return (padded - self.n_fft) // self.hop_length + 1


DEFAULT_MEL = MelConfig()


@lru_cache(maxsize=8)
def _mel_basis_np(cfg: MelConfig) -> np.ndarray:
    from librosa.filters import mel as librosa_mel

    return librosa_mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                       fmin=cfg.f_min, fmax=cfg.f_max).astype(np.float32)


def mel_basis(cfg: MelConfig = DEFAULT_MEL, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``[n_mels, n_fft // 2 + 1]`` Slaney mel filter bank as a float32 tensor."""
    return torch.from_numpy(_mel_basis_np(cfg)).to(device)


def linear_spectrogram(wav: torch.Tensor, cfg: MelConfig = DEFAULT_MEL) -> torch.Tensor:
    """Magnitude spectrogram ``[B, n_fft // 2 + 1, frames]`` exactly as HiFi-GAN computes it."""
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected a waveform tensor [B, samples], got shape {tuple(wav.shape)}")
    pad = (cfg.n_fft - cfg.hop_length) // 2
    if wav.shape[-1] <= pad:
        raise ValueError(f"waveform of {wav.shape[-1]} samples is too short for reflect padding of {pad}")
    y = torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(cfg.win_length, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(y, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                      center=False, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-9)


def mel_spectrogram(wav: torch.Tensor, cfg: MelConfig = DEFAULT_MEL) -> torch.Tensor:
    """Log-mel spectrogram ``[B, n_mels, frames]`` of a float waveform ``[B, samples]`` in [-1, 1]."""
    spec = linear_spectrogram(wav, cfg)
    basis = mel_basis(cfg, spec.device).to(spec.dtype)
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))


def mel_from_file(path, cfg: MelConfig = DEFAULT_MEL) -> torch.Tensor:
    """Load an audio file (any rate, any channels) and return its ``[n_mels, frames]`` log-mel."""
    from gradtts.audio import check_clipping, load_audio

    wav, _ = load_audio(path, cfg.sample_rate)
    check_clipping(wav, str(path))
    return mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), cfg)[0]
