"""Tiny real-format inputs for the corpus recipes' end-to-end tests: corpora in LibriTTS, VCTK and folder layout
(synthvox voices reading one shared prompt list, as parallel-text corpora do), an official-format Grad-TTS
checkpoint (a plain state dict of a seeded tiny model) and a seeded ECAPA model in speechbrain's directory
layout. Every file is written by the test into its own tmp folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from data_prep.sentences import generate_sentences
from data_prep.synthvox import SAMPLE_RATE, _synthesise, voice_table

HAVE_SYNTH = bool(shutil.which("espeak-ng") and shutil.which("flite"))
SYNTH_SKIP = "espeak-ng/flite not installed (apt-get install -y espeak-ng flite)"


def prompts(n: int, seed: str = "parallel") -> list[str]:
    """The shared prompt list every speaker of a test corpus reads."""
    return generate_sentences(n, seed)


def _read_prompts(voice_index: int, texts: list[str], tmp: Path) -> list[np.ndarray]:
    """synthvox voice ``voice_index`` reading ``texts`` (at synthvox's rate)."""
    voice = voice_table()[voice_index]
    out = []
    for i, text in enumerate(texts):
        wav = tmp / f"v{voice_index}_{i}.wav"
        err = _synthesise((voice, text, str(wav)))
        assert err is None, err
        out.append(sf.read(wav, dtype="float32")[0])
    return out


def _resample(x: np.ndarray, sr: int) -> np.ndarray:
    g = np.gcd(sr, SAMPLE_RATE)
    return resample_poly(x, sr // g, SAMPLE_RATE // g).astype(np.float32)


def write_corpus(root: Path, layout: str, speakers: dict[str, int], texts: list[str]) -> Path:
    """Speakers (id -> synthvox voice index) reading ``texts`` in ``layout``: libritts | vctk | folder.

    libritts: ``test-clean/<spk>/<chapter>/<spk>_<chapter>_000000_<k>.wav`` (24 kHz) + ``.normalized.txt``;
    vctk: ``wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac`` (48 kHz) + ``txt/<spk>/<spk>_<nnn>.txt``;
    folder: ``<spk>/<k>.wav`` (16 kHz) + ``<spk>/<k>.txt``.
    """
    scratch = root.parent / f".{root.name}-synth"
    scratch.mkdir(parents=True, exist_ok=True)
    for spk, voice in speakers.items():
        for k, (text, x) in enumerate(zip(texts, _read_prompts(voice, texts, scratch))):
            if layout == "libritts":
                d = root / "test-clean" / spk / "100"
                stem, sr, ext = f"{spk}_100_000000_{k:06d}", 24000, ".wav"
                txt = d / f"{stem}.normalized.txt"
            elif layout == "vctk":
                d = root / "wav48_silence_trimmed" / spk
                stem, sr, ext = f"{spk}_{k + 1:03d}_mic1", 48000, ".flac"
                txt = root / "txt" / spk / f"{spk}_{k + 1:03d}.txt"
            elif layout == "folder":
                d = root / spk
                stem, sr, ext = f"{k:03d}", 16000, ".wav"
                txt = d / f"{stem}.txt"
            else:
                raise ValueError(f"unknown layout {layout!r}")
            d.mkdir(parents=True, exist_ok=True)
            txt.parent.mkdir(parents=True, exist_ok=True)
            sf.write(d / f"{stem}{ext}", _resample(x, sr), sr)
            txt.write_text(text + "\n")
    shutil.rmtree(scratch)
    return root


def save_official_tiny(path: Path, n_spks: int = 4, seed: int = 0) -> Path:
    """A seeded tiny multi-speaker Grad-TTS saved as the official code saves it: a plain state dict."""
    import torch

    from gradtts.model.config import build_model
    from gradtts.train.cli import compose

    torch.manual_seed(seed)
    model = build_model(compose(["data.feats_dir=x", "model=tiny"]).model, n_spks=n_spks)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
