"""Speaker encoders behind one interface, with an on-disk embedding cache.

    enc = load_speaker_encoder("ge2e")                      # embedded default (resemblyzer weights)
    enc = load_speaker_encoder("ecapa", source="/models/spkrec-ecapa-voxceleb")
    emb = enc.embed_files(paths)                            # [N, D], rows L2-normalised

Audio is resampled to 16 kHz inside. Files that are unreadable, shorter than 0.5 s or silent raise
:class:`SpeakerAudioError` naming the file. Embeddings are cached per (encoder, file content hash).
"""

from __future__ import annotations

import abc
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from gradtts.audio import AudioError, load_audio, resample
from gradtts.io import atomic_np_save

SAMPLE_RATE = 16000
MIN_SECONDS = 0.5
ECAPA_FILES = ("hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt", "classifier.ckpt",
               "label_encoder.txt")


class SpeakerAudioError(ValueError):
    """Audio that cannot be embedded; the message names the file."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRADTTS_CACHE", Path.home() / ".cache" / "gradtts")) / "embeddings"


class SpeakerEncoder(abc.ABC):
    """Base class: subclasses implement ``_embed([16 kHz float arrays]) -> [N, D]``."""

    name = "base"

    def __init__(self, device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                 batch_size: int = 32):
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.batch_size = batch_size

    @property
    def cache_key(self) -> str:
        return self.name

    @abc.abstractmethod
    def _embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        """Embeddings ``[N, D]`` (L2-normalised rows) of checked 16 kHz waveforms."""

    def _check(self, wav: np.ndarray, name: str) -> np.ndarray:
        if len(wav) < MIN_SECONDS * SAMPLE_RATE:
            raise SpeakerAudioError(f"{name}: {len(wav) / SAMPLE_RATE:.2f} s of audio; at least {MIN_SECONDS} s "
                                    "is needed for a speaker embedding")
        if float(np.max(np.abs(wav))) < 1e-4:
            raise SpeakerAudioError(f"{name}: the audio is silent")
        return wav

    def embed_wavs(self, wavs: Sequence[np.ndarray], sr: int, names: Sequence[str] | None = None) -> np.ndarray:
        """Embeddings ``[N, D]`` of in-memory waveforms at sample rate ``sr``."""
        names = list(names) if names is not None else [f"waveform #{i}" for i in range(len(wavs))]
        ready = [self._check(resample(np.asarray(w, dtype=np.float32), sr, SAMPLE_RATE), n)
                 for w, n in zip(wavs, names)]
        out = [self._embed(ready[i:i + self.batch_size]) for i in range(0, len(ready), self.batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)

    def _cache_path(self, path: Path) -> Path:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        key = hashlib.sha1(self.cache_key.encode()).hexdigest()[:12]
        return self.cache_dir / f"{self.name}-{key}" / digest[:2] / f"{digest}.npy"

    def embed_files(self, paths: Sequence[str | os.PathLike], progress: bool = False) -> np.ndarray:
        """Embeddings ``[N, D]`` of audio files (cached by content)."""
        from tqdm import tqdm

        paths = [Path(p) for p in paths]
        result: list[np.ndarray | None] = [None] * len(paths)
        todo = []
        for i, p in enumerate(paths):
            if not p.is_file():
                raise SpeakerAudioError(f"{p}: no such audio file")
            cached = self._cache_path(p)
            if cached.is_file():
                result[i] = np.load(cached)
            else:
                todo.append(i)
        for start in tqdm(range(0, len(todo), self.batch_size), desc=f"embed ({self.name})", unit="batch",
                          disable=not progress or not todo):
            chunk = todo[start:start + self.batch_size]
            wavs = []
            for i in chunk:
                try:
                    wav, _ = load_audio(paths[i], SAMPLE_RATE)
                except AudioError as exc:
                    raise SpeakerAudioError(str(exc)) from exc
                wavs.append(self._check(wav, str(paths[i])))
            for i, e in zip(chunk, self._embed(wavs)):
                atomic_np_save(self._cache_path(paths[i]), e.astype(np.float32))
                result[i] = e
        return np.stack(result).astype(np.float32) if result else np.zeros((0, 0), np.float32)


class GE2ESpeakerEncoder(SpeakerEncoder):
    name = "ge2e"

    def __init__(self, source: str | os.PathLike | None = None, **kw):
        super().__init__(**kw)
        from gradtts.scoring.ge2e import GE2EEncoder, resemblyzer_weights_path

        self.source = Path(source) if source else resemblyzer_weights_path()
        self.model = GE2EEncoder.from_resemblyzer(self.source).to(self.device)

    @property
    def cache_key(self) -> str:
        return f"ge2e:{hashlib.sha1(self.source.read_bytes()).hexdigest()}"

    def _embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        from gradtts.scoring.ge2e import embed_preprocessed, preprocess

        processed = []
        for w in wavs:
            p = preprocess(w)
            # VAD may remove nearly everything from odd signals; fall back to the untrimmed audio then.
            processed.append(p if len(p) >= SAMPLE_RATE * 0.25 else w)
        return embed_preprocessed(self.model, processed, self.device)


class ECAPASpeakerEncoder(SpeakerEncoder):
    """speechbrain's ECAPA-TDNN loaded from a local directory (never downloaded)."""

    name = "ecapa"

    def __init__(self, source: str | os.PathLike | None = None, savedir: str | os.PathLike | None = None, **kw):
        super().__init__(**kw)
        if source is None:
            raise FileNotFoundError(
                "the ecapa encoder needs source=<directory of speechbrain/spkrec-ecapa-voxceleb>: on a machine with "
                "internet run `huggingface-cli download speechbrain/spkrec-ecapa-voxceleb --local-dir DIR` and copy DIR")
        self.source = Path(source).resolve()
        missing = [f for f in ECAPA_FILES if not (self.source / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.source}: incomplete ECAPA model directory, missing {', '.join(missing)}; it must hold "
                f"{', '.join(ECAPA_FILES)} (download speechbrain/spkrec-ecapa-voxceleb on a connected machine)")
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import LocalStrategy

        self.model = EncoderClassifier.from_hparams(
            source=str(self.source), savedir=str(savedir or self.source),
            overrides={"pretrained_path": str(self.source)}, run_opts={"device": str(self.device)},
            local_strategy=LocalStrategy.NO_LINK)
        self.model.eval()

    @property
    def cache_key(self) -> str:
        ckpt = self.source / "embedding_model.ckpt"
        return f"ecapa:{hashlib.sha1(ckpt.read_bytes()).hexdigest()}"

    @torch.no_grad()
    def _embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        longest = max(len(w) for w in wavs)
        batch = torch.zeros(len(wavs), longest)
        for i, w in enumerate(wavs):
            batch[i, :len(w)] = torch.from_numpy(w)
        lens = torch.tensor([len(w) / longest for w in wavs])
        emb = self.model.encode_batch(batch.to(self.device), lens.to(self.device)).squeeze(1).cpu()
        return torch.nn.functional.normalize(emb, dim=-1).numpy()


ENCODERS = {"ge2e": GE2ESpeakerEncoder, "ecapa": ECAPASpeakerEncoder}


def load_speaker_encoder(name: str, source: str | os.PathLike | None = None, device: str = "cpu",
                         cache_dir: str | os.PathLike | None = None) -> SpeakerEncoder:
    """``ge2e`` (resemblyzer weights; ``source`` may name another pretrained.pt) or ``ecapa`` (local dir)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown speaker encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](source=source, device=device, cache_dir=cache_dir)
