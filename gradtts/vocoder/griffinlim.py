"""Vocoder-free fallback: invert a HiFi-GAN log-mel with a least-squares mel inverse and Griffin-Lim."""

from __future__ import annotations

import torch

from gradtts.features import DEFAULT_MEL, MelConfig, mel_basis


def mel_to_linear(log_mel: torch.Tensor, cfg: MelConfig = DEFAULT_MEL) -> torch.Tensor:
    """``[B, 80, T]`` log-mel -> non-negative ``[B, n_fft/2+1, T]`` magnitudes (pseudo-inverse, clamped)."""
    basis = mel_basis(cfg, log_mel.device).to(log_mel.dtype)
    # Real log-mels stay below ~3; clamping keeps exp() finite for the outputs of untrained models.
    return torch.clamp(torch.linalg.pinv(basis) @ torch.exp(torch.clamp(log_mel, max=8.0)), min=1e-5)


def griffin_lim(log_mel: torch.Tensor, cfg: MelConfig = DEFAULT_MEL, n_iter: int = 32, momentum: float = 0.99,
                seed: int = 0) -> torch.Tensor:
    """Waveforms ``[B, T * hop]`` whose HiFi-GAN mel approximates ``log_mel`` (fast Griffin-Lim)."""
    mag = mel_to_linear(log_mel, cfg)
    window = torch.hann_window(cfg.win_length, device=mag.device, dtype=mag.dtype)
    pad = (cfg.n_fft - cfg.hop_length) // 2
    length = mag.shape[-1] * cfg.hop_length

    def istft(spec):
        # Frames are uncentred on a signal reflect-padded by `pad`: overlap-add them, normalise by the
        # summed squared window (floored where it vanishes at the edges), then cut the padding.
        frames = torch.fft.irfft(spec, n=cfg.n_fft, dim=1) * window[None, :, None]
        total = (spec.shape[-1] - 1) * cfg.hop_length + cfg.n_fft
        fold = dict(output_size=(1, total), kernel_size=(1, cfg.n_fft), stride=(1, cfg.hop_length))
        y = torch.nn.functional.fold(frames, **fold)[:, 0, 0]
        norm = torch.nn.functional.fold((window ** 2)[None, :, None].expand(1, -1, spec.shape[-1]), **fold)[:, 0, 0]
        return (y / torch.clamp(norm, min=1e-3))[:, pad:pad + length]

    def stft(y):
        y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        return torch.stft(y, cfg.n_fft, cfg.hop_length, cfg.win_length, window, center=False, return_complex=True)

    g = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=g)).to(mag.device)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(mag * angles))
        rebuilt = rebuilt[..., :mag.shape[-1]]
        accel = rebuilt - (momentum / (1 + momentum)) * prev
        angles = accel / (accel.abs() + 1e-8)
        prev = rebuilt
    return torch.clamp(istft(mag * angles), -1.0, 1.0)
