"""GE2E speaker encoder (Wan et al. 2018) with the weights shipped in the ``resemblyzer`` wheel.

Our own module (3-layer LSTM 40 -> 256, linear 256 -> 256, ReLU, L2 norm) loads resemblyzer's
``pretrained.pt`` with ``weights_only=True``; resemblyzer's code is never imported. Pre-processing
follows resemblyzer: 16 kHz, volume raised to -30 dBFS (never lowered), long silences removed with
WebRTC VAD (mode 3, 30 ms windows, 8-window smoothing, 6-window dilation), 40-band power mel
(25 ms / 10 ms), 1.6 s partial windows at 1.3 per second whose embeddings are averaged.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_MELS = 40
WIN = 400          # 25 ms
HOP = 160          # 10 ms
PARTIAL_FRAMES = 160
VAD_WINDOW = 480   # 30 ms
TARGET_DBFS = -30.0
INT16_MAX = 2 ** 15 - 1


def resemblyzer_weights_path() -> Path:
    """Path of ``resemblyzer/pretrained.pt`` in the installed wheel (the package is not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the GE2E weights come with the resemblyzer package: "
                                "make install, or pip install -c constraints.txt --no-deps resemblyzer")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the installed resemblyzer package; reinstall it")
    return path


class GE2EEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """``[B, 160, 40]`` power mels -> L2-normalised embeddings ``[B, 256]``."""
        _, (hidden, _) = self.lstm(mels)
        e = torch.relu(self.linear(hidden[-1]))
        return e / torch.norm(e, dim=1, keepdim=True)

    @classmethod
    def from_resemblyzer(cls, path: str | Path | None = None) -> "GE2EEncoder":
        ckpt = torch.load(path or resemblyzer_weights_path(), map_location="cpu", weights_only=True)
        state = {k: v for k, v in ckpt["model_state"].items() if k.startswith(("lstm.", "linear."))}
        model = cls()
        model.load_state_dict(state, strict=True)
        return model.eval()


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise the level to ``target_dbfs`` RMS; louder signals are left as they are."""
    rms = np.sqrt(np.mean((wav * INT16_MAX) ** 2))
    if rms == 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / INT16_MAX)
    return wav * (10 ** (change / 20)) if change > 0 else wav


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate((np.zeros((width - 1) // 2), x, np.zeros(width // 2)))
    c = np.cumsum(padded, dtype=float)
    c[width:] = c[width:] - c[:-width]
    return c[width - 1:] / width


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """Drop silences longer than ~0.2 s, using WebRTC VAD as resemblyzer does."""
    import webrtcvad
    from scipy.ndimage import binary_dilation

    wav = wav[:len(wav) - len(wav) % VAD_WINDOW]
    if len(wav) == 0:
        return wav
    pcm = struct.pack(f"{len(wav)}h", *np.round(wav * INT16_MAX).astype(np.int16))
    vad = webrtcvad.Vad(mode=3)
    flags = np.array([vad.is_speech(pcm[s * 2:(s + VAD_WINDOW) * 2], sample_rate=SAMPLE_RATE)
                      for s in range(0, len(wav), VAD_WINDOW)])
    mask = np.round(_moving_average(flags, 8)).astype(bool)
    mask = binary_dilation(mask, np.ones(7))
    return wav[np.repeat(mask, VAD_WINDOW)]


def preprocess(wav: np.ndarray) -> np.ndarray:
    """16 kHz float waveform -> volume-normalised, silence-trimmed waveform."""
    return trim_long_silences(normalize_volume(np.asarray(wav, dtype=np.float32)))


def power_mel(wav: np.ndarray) -> np.ndarray:
    """``[frames, 40]`` power mel spectrogram (not log)."""
    import librosa

    return librosa.feature.melspectrogram(y=wav, sr=SAMPLE_RATE, n_fft=WIN, hop_length=HOP,
                                          n_mels=N_MELS).astype(np.float32).T


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[slice]:
    """Mel-frame windows of 160 frames, ``rate`` per second, the last kept if 75 % covered."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / rate) / HOP))
    slices = [slice(i, i + PARTIAL_FRAMES) for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


def utterance_windows(wav: np.ndarray) -> np.ndarray:
    """The ``[n, 160, 40]`` partial mel windows of one pre-processed utterance."""
    slices = partial_slices(len(wav))
    need = slices[-1].stop * HOP
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    mel = power_mel(wav)
    return np.stack([mel[s] for s in slices])


@torch.no_grad()
def embed_preprocessed(model: GE2EEncoder, wavs: list[np.ndarray], device: str | torch.device = "cpu") -> np.ndarray:
    """Embeddings ``[N, 256]`` of pre-processed 16 kHz waveforms (all partial windows in one batch)."""
    windows = [utterance_windows(w) for w in wavs]
    counts = [len(w) for w in windows]
    partials = model(torch.from_numpy(np.concatenate(windows)).to(device)).cpu().numpy()
    out = []
    start = 0
    for n in counts:
        mean = partials[start:start + n].mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
        start += n
    return np.stack(out).astype(np.float32)
