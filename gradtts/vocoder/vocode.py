"""Batched vocoding of variable-length mels and atomic wav writing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from gradtts.audio import write_wav


class Vocoder:
    """HiFi-GAN (official weights) or Griffin-Lim behind one call: mels ``[80, T_i]`` -> wavs ``[T_i * 256]``."""

    def __init__(self, kind: str = "hifigan", path: str | os.PathLike | None = None, device: str = "cpu",
                 name: str = "universal", dtype: torch.dtype = torch.float32, batch_size: int = 8,
                 model: torch.nn.Module | None = None):
        self.kind = kind
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.dtype = dtype if self.device.type == "cuda" else torch.float32
        self.hop_length = 256
        if kind == "hifigan":
            from gradtts.vocoder.weights import load_hifigan

            self.model = (model if model is not None else load_hifigan(path, self.device, name)).to(self.dtype)
            self.hop_length = self.model.hop_length
        elif kind != "griffinlim":
            raise ValueError(f"unknown vocoder {kind!r}: hifigan or griffinlim")

    @torch.no_grad()
    def __call__(self, mels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        from gradtts.vocoder.griffinlim import griffin_lim

        out: list[torch.Tensor] = []
        for start in range(0, len(mels), self.batch_size):
            chunk = [m.float() for m in mels[start:start + self.batch_size]]
            lengths = [m.shape[-1] for m in chunk]
            # Pad with the log-mel floor (silence) so padding does not leak energy into the real frames.
            batch = torch.full((len(chunk), chunk[0].shape[0], max(lengths)), float(torch.log(torch.tensor(1e-5))))
            for i, m in enumerate(chunk):
                batch[i, :, :m.shape[-1]] = m
            batch = batch.to(self.device)
            if self.kind == "hifigan":
                wav = self.model(batch.to(self.dtype)).float()[:, 0]
            else:
                wav = griffin_lim(batch)
            out += [wav[i, :n * self.hop_length].cpu() for i, n in enumerate(lengths)]
        return out

    def to_files(self, mels: Sequence[torch.Tensor], paths: Sequence[str | os.PathLike]) -> None:
        """Vocode and write 16-bit 22050 Hz wavs atomically."""
        for wav, path in zip(self(mels), paths):
            write_wav(Path(path), wav.numpy(), 22050)
