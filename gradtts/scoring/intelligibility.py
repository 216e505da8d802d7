"""Intelligibility: word and character error rates of an ASR transcript of each generated sentence.

    asr = load_asr("pocketsphinx")                       # offline default: the wheel's bundled en-US model
    asr = load_asr("whisper", source="/models/base.en.pt")  # an OpenAI Whisper checkpoint on disk
    hyps = [transcribe(wav, sr, asr) for wav in wavs]    # or transcribe_files(paths, asr)
    rates = wer_cer(texts, hyps)                         # {"wer": 0.12, "cer": 0.05, "words": 31, "chars": 160}

Both sides go through :func:`normalize_text` before they are compared: the toolkit's English cleaners (ASCII,
lower case, numbers, dates and abbreviations spelled out as the synthesiser read them), then every character
other than a letter, a digit or a word-internal apostrophe becomes a space. So "Hello, World!" and "hello
world" are equal, and "Dr. Smith paid $5" is compared as "doctor smith paid five dollars" whichever way the
recogniser writes it. The rates are corpus-level (errors summed over sentences over the reference length
summed), as fractions: 0.12 is 12 %.

Whisper is read from a local ``.pt`` file only (OpenAI's format: a dict with "dims" and "model_state_dict",
loaded with ``weights_only=True``); a model name is never looked up or downloaded.
"""

from __future__ import annotations

import abc
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from gradtts.audio import AudioError, load_audio, resample

SAMPLE_RATE = 16000
ASR_KINDS = ("pocketsphinx", "whisper")
DEFAULT_ASR = "pocketsphinx"

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
# Apostrophes that are not between two word characters (quotes, "students'") are punctuation.
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z0-9])'|'(?![a-z0-9])")
_SPACES = re.compile(r"\s+")


class ASRModelError(ValueError):
    """An ASR model that cannot be loaded; the message names the file and what to do."""


class ASRAudioError(ValueError):
    """Audio that cannot be transcribed; the message names the file or waveform."""


def normalize_text(text: str) -> str:
    """Lower-case words without punctuation, numbers spelled out by the toolkit's English cleaners."""
    from gradtts.text.cleaners import english_cleaners

    text = _NOT_WORD.sub(" ", english_cleaners(text))
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def wer_cer(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
    """Corpus WER and CER of ``hyps`` against ``refs`` (both normalised), with the reference word/char counts."""
    import jiwer

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference texts but {len(hyps)} transcripts: they must pair one to one")
    if not refs:
        raise ValueError("no sentences to score")
    refs_n, hyps_n = [normalize_text(r) for r in refs], [normalize_text(h) for h in hyps]
    empty = [i for i, r in enumerate(refs_n) if not r]
    if empty:
        raise ValueError(f"reference text #{empty[0]} ({refs[empty[0]]!r}) has no words after normalisation; "
                         "an empty sentence cannot be scored")
    words = jiwer.process_words(refs_n, hyps_n)
    chars = jiwer.process_characters(refs_n, hyps_n)
    return {"wer": float(words.wer), "cer": float(chars.cer),
            "words": int(sum(len(r.split()) for r in refs_n)), "chars": int(sum(len(r) for r in refs_n))}


def _check(wav: np.ndarray, sr: int, name: str) -> np.ndarray:
    """Checked 16 kHz float32 mono."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise ASRAudioError(f"{name}: expected a non-empty mono waveform (1-D array), got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ASRAudioError(f"{name}: contains NaN or infinite samples")
    return resample(wav, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else wav


class Recognizer(abc.ABC):
    """An English ASR: ``_transcribe(16 kHz float32 mono) -> raw transcript``."""

    name = "base"

    @abc.abstractmethod
    def _transcribe(self, wav: np.ndarray) -> str:
        """The recogniser's text for a checked 16 kHz waveform."""

    def transcribe(self, wav: np.ndarray, sr: int, name: str = "waveform") -> str:
        """Raw (not normalised) transcript of one utterance at sample rate ``sr``."""
        return self._transcribe(_check(wav, sr, name)).strip()


class PocketSphinxASR(Recognizer):
    """CMU PocketSphinx with the acoustic model, dictionary and 3-gram LM bundled in its wheel."""

    name = "pocketsphinx"

    def __init__(self):
        from pocketsphinx import Decoder

        # The default configuration points at the wheel's en-US model; FATAL keeps its per-utterance log quiet.
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def _transcribe(self, wav: np.ndarray) -> str:
        # PocketSphinx reads 16-bit PCM; clip as a WAV file of the same audio would be.
        pcm = np.round(np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)
        # The feature front end keeps state from the previous utterance (the same clip decoded second came out
        # "no i sang at abbey" instead of "north than your daddy"): reset it so each transcript depends on its
        # own audio only, whatever was decoded before.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


class WhisperASR(Recognizer):
    """OpenAI Whisper from a local checkpoint, greedy decoding (temperature 0), English, fp32."""

    name = "whisper"

    def __init__(self, source: str | os.PathLike, device: str = "cpu"):
        path = Path(source)
        if not path.is_file():
            raise ASRModelError(f"{path}: no such Whisper checkpoint; give the path of an OpenAI-format .pt file "
                                "(a dict with 'dims' and 'model_state_dict'); model names are not downloaded")
        import whisper

        try:
            # A path that is a file is read with torch.load(weights_only=True); names would be downloaded.
            self.model = whisper.load_model(str(path), device=device)
        except Exception as exc:  # pickle, missing keys, shape mismatches: all mean "not a Whisper checkpoint"
            raise ASRModelError(f"{path}: not a loadable Whisper checkpoint ({exc.__class__.__name__}: {exc}); "
                                "expected OpenAI's format, a dict with 'dims' and 'model_state_dict'") from exc
        self.source = path

    def _transcribe(self, wav: np.ndarray) -> str:
        # One temperature (no fallback sampling) and no conditioning on earlier windows: deterministic output.
        result = self.model.transcribe(wav, language="en", task="transcribe", temperature=0.0, fp16=False,
                                       condition_on_previous_text=False, verbose=None)
        return result["text"]


def load_asr(kind: str = DEFAULT_ASR, source: str | os.PathLike | None = None, device: str = "cpu") -> Recognizer:
    """The recogniser ``kind`` (pocketsphinx needs no ``source``; whisper needs a checkpoint path)."""
    if kind == "pocketsphinx":
        if source is not None:
            raise ASRModelError(f"asr=pocketsphinx uses the model bundled in its wheel; got source={source}")
        return PocketSphinxASR()
    if kind == "whisper":
        if source is None:
            raise ASRModelError("asr=whisper needs source=<path of an OpenAI-format Whisper .pt checkpoint>")
        return WhisperASR(source, device=device)
    raise ASRModelError(f"asr={kind!r}: choose one of {', '.join(ASR_KINDS)}")


@lru_cache(maxsize=1)
def _default_asr() -> Recognizer:
    return load_asr(DEFAULT_ASR)


def transcribe(wav: np.ndarray, sr: int, asr: Recognizer | None = None, name: str = "waveform") -> str:
    """Raw transcript of one utterance by ``asr`` (default: PocketSphinx, loaded once)."""
    return (asr or _default_asr()).transcribe(wav, sr, name)


def transcribe_files(paths: Sequence[str | os.PathLike], asr: Recognizer | None = None,
                     progress: bool = False) -> list[str]:
    """Raw transcripts of audio files, in order; unreadable files raise naming the file."""
    from tqdm import tqdm

    asr = asr or _default_asr()
    out = []
    for path in tqdm([Path(p) for p in paths], desc=f"ASR ({asr.name})", unit="file", disable=not progress):
        try:
            wav, sr = load_audio(path, SAMPLE_RATE)
        except AudioError as exc:
            raise ASRAudioError(str(exc)) from exc
        out.append(asr.transcribe(wav, sr, name=str(path)))
    return out
