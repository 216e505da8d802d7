"""Speaker encoders behind one interface, with an on-disk embedding cache.

    enc = load_speaker_encoder("ge2e")                      # embedded default (resemblyzer weights)
    enc = load_speaker_encoder("ecapa", source="/models/spkrec-ecapa-voxceleb")
    emb = enc.embed_files(paths)                            # [N, D], rows L2-normalised

Audio is resampled to 16 kHz inside. Files that are unreadable, shorter than 0.5 s or silent raise
:class:`SpeakerAudioError` naming the file. Embeddings are cached per (encoder, file content hash) and,
off the CPU, device type. ``device`` is resolved by :func:`gradtts.device.resolve_device` (``auto``: CUDA
when present).

ECAPA and configuration that runs code: speechbrain builds a model by executing its ``hyperparams.yaml``
with hyperpyyaml, whose tags call Python (``!apply:os.system ["..."]`` runs a shell command). A model
directory copied from elsewhere is therefore loaded without executing it: the known ECAPA-TDNN
architecture (Fbank front end, per-sentence mean normalisation, ``ECAPA_TDNN``) is built from the plain
values of the YAML, read with ``yaml.safe_load`` semantics and its tags kept as inert data, and the
weights come from ``embedding_model.ckpt`` with ``torch.load(weights_only=True)``. speechbrain's own
loader (which executes the YAML) is used only with ``trust_yaml=True``.
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

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


class EncoderModelError(ValueError):
    """A speaker-encoder model directory that cannot be loaded safely; the message names the file and what to do."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRADTTS_CACHE", Path.home() / ".cache" / "gradtts")) / "embeddings"


class SpeakerEncoder(abc.ABC):
    """Base class: subclasses implement ``_embed([16 kHz float arrays]) -> [N, D]``."""

    name = "base"

    def __init__(self, device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                 batch_size: int = 32):
        from gradtts.device import resolve_device

        # ``auto`` and ``cuda`` resolve as in every other stage (the caller has logged the choice).
        self.device = resolve_device(device, announce=False)
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
        # A GPU rounds differently: its embeddings are kept apart, and the CPU's keep the key they always had.
        device = "" if self.device.type == "cpu" else f"@{self.device.type}"
        key = hashlib.sha1((self.cache_key + device).encode()).hexdigest()[:12]
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


# The classes a spkrec-ecapa-voxceleb hyperparams.yaml instantiates for embedding, by their YAML keys.
_ECAPA_NODES = {"compute_features": "speechbrain.lobes.features.Fbank",
                "mean_var_norm": "speechbrain.processing.features.InputNormalization",
                "embedding_model": "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN"}
# spkrec-ecapa-voxceleb's values, used for whatever its YAML does not state.
SPKREC_ECAPA = {"compute_features": {"n_mels": 80},
                "mean_var_norm": {"norm_type": "sentence", "std_norm": False},
                "embedding_model": {"input_size": 80, "channels": [1024, 1024, 1024, 1024, 3072],
                                    "kernel_sizes": [5, 3, 3, 3, 1], "dilations": [1, 2, 3, 4, 1],
                                    "attention_channels": 128, "lin_neurons": 192}}
# Constructor arguments never taken from a file: the device is ours, the activation would be a class.
_NOT_FROM_YAML = {"self", "device", "activation"}
_REF = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")


class _Tagged(NamedTuple):
    """A hyperpyyaml tag (``!new:...``, ``!ref``, ``!apply:...``) with its node's plain value, never called."""

    tag: str
    value: Any


def _inert_loader():
    import yaml

    class InertLoader(yaml.SafeLoader):
        """``yaml.safe_load`` that keeps custom ``!`` tags as :class:`_Tagged` data instead of failing on them."""

    def tagged(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return _Tagged(node.tag, loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return _Tagged(node.tag, loader.construct_sequence(node, deep=True))
        return _Tagged(node.tag, loader.construct_scalar(node))

    InertLoader.add_multi_constructor("!", tagged)
    return InertLoader


def read_hyperparams_safely(path: str | os.PathLike) -> dict[str, Any]:
    """A hyperpyyaml file as plain data: tags become :class:`_Tagged` values, nothing is executed."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_inert_loader())  # noqa: S506 - safe loader
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EncoderModelError(f"{path}: not a readable YAML file ({exc})") from exc
    if not isinstance(doc, dict):
        raise EncoderModelError(f"{path}: expected a YAML mapping of hyper-parameters, found {type(doc).__name__}")
    return doc


def _plain(value: Any, doc: dict[str, Any], where: str, depth: int = 0) -> Any:
    """``value`` as plain data: ``!ref <name>`` resolved to a top-level plain value; any other tag refused."""
    if isinstance(value, _Tagged):
        m = _REF.match(str(value.value)) if value.tag == "!ref" else None
        if m is None or m.group(1) not in doc or depth > 10:
            raise EncoderModelError(f"{where}: {value.tag} {value.value!r} is not a plain value (only numbers, "
                                    "strings, lists and '!ref <name>' of those are read)")
        return _plain(doc[m.group(1)], doc, where, depth + 1)
    if isinstance(value, list):
        return [_plain(v, doc, where, depth) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise EncoderModelError(f"{where}: {type(value).__name__} value {value!r} is not a plain value")


def ecapa_arguments(hyperparams: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Constructor arguments of the front end, normaliser and ECAPA-TDNN, read as data from ``hyperparams``.

    Keys the file does not state keep spkrec-ecapa-voxceleb's values; a node of another class or an argument
    that is not a plain value raises :class:`EncoderModelError` (such a model needs ``trust_yaml=True``).
    """
    import importlib

    path = Path(hyperparams)
    doc = read_hyperparams_safely(path)
    out: dict[str, dict[str, Any]] = {}
    for key, qualname in _ECAPA_NODES.items():
        node = doc.get(key)
        where = f"{path}: {key}"
        if node is None:
            raise EncoderModelError(f"{where}: missing; not a speechbrain ECAPA speaker-embedding model")
        if not (isinstance(node, _Tagged) and node.tag == f"!new:{qualname}"):
            shown = node.tag if isinstance(node, _Tagged) else repr(node)
            raise EncoderModelError(f"{where}: is {shown}, the safe loader builds only !new:{qualname}; load a model "
                                    "of another architecture with encoder_trust_yaml=true (it executes the YAML)")
        args = node.value if node.value not in (None, "") else {}
        if not isinstance(args, dict):
            raise EncoderModelError(f"{where}: expected keyword arguments, found {args!r}")
        module, _, name = qualname.rpartition(".")
        known = set(inspect.signature(getattr(importlib.import_module(module), name)).parameters) - _NOT_FROM_YAML
        unknown = sorted(set(args) - known)
        if unknown:
            raise EncoderModelError(f"{where}: arguments {unknown} are not read by the safe loader (it reads "
                                    f"{sorted(known)}); use encoder_trust_yaml=true for this model")
        out[key] = {**SPKREC_ECAPA[key], **{k: _plain(v, doc, f"{where}.{k}") for k, v in args.items()}}
    return out


class ECAPASpeakerEncoder(SpeakerEncoder):
    """speechbrain's ECAPA-TDNN loaded from a local directory (never downloaded).

    By default the YAML is read as data and the weights with ``weights_only=True`` (nothing in the directory
    runs); ``trust_yaml=True`` uses speechbrain's ``EncoderClassifier.from_hparams``, which executes it.
    Both compute ``encode_batch``'s embeddings: Fbank, per-sentence mean normalisation, ECAPA-TDNN
    (``mean_var_norm_emb.ckpt`` only applies to ``encode_batch(normalize=True)`` and is not used).
    """

    name = "ecapa"

    def __init__(self, source: str | os.PathLike | None = None, savedir: str | os.PathLike | None = None,
                 trust_yaml: bool = False, **kw):
        super().__init__(**kw)
        if source is None:
            raise FileNotFoundError(
                "the ecapa encoder needs source=<directory of speechbrain/spkrec-ecapa-voxceleb>: on a machine with "
                "internet run `huggingface-cli download speechbrain/spkrec-ecapa-voxceleb --local-dir DIR` "
                "and copy DIR")
        self.source = Path(source).resolve()
        missing = [f for f in ECAPA_FILES if not (self.source / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{self.source}: incomplete ECAPA model directory, missing {', '.join(missing)}; it must hold "
                f"{', '.join(ECAPA_FILES)} (download speechbrain/spkrec-ecapa-voxceleb on a connected machine)")
        self.trust_yaml = trust_yaml
        self.model = None
        if trust_yaml:
            from speechbrain.inference.speaker import EncoderClassifier
            from speechbrain.utils.fetching import LocalStrategy

            self.model = EncoderClassifier.from_hparams(
                source=str(self.source), savedir=str(savedir or self.source),
                overrides={"pretrained_path": str(self.source)}, run_opts={"device": str(self.device)},
                local_strategy=LocalStrategy.NO_LINK)
            self.model.eval()
            self.compute_features = self.model.mods.compute_features
            self.mean_var_norm = self.model.mods.mean_var_norm
            self.embedding_model = self.model.mods.embedding_model
        else:
            self._build_safely()

    def _build_safely(self) -> None:
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization
        try:
            from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint
        except ImportError:  # releases before the key-renaming hook load state dicts as they are
            def hook_on_loading_state_dict_checkpoint(state):
                return state

        args = ecapa_arguments(self.source / "hyperparams.yaml")
        self.compute_features = Fbank(**args["compute_features"]).to(self.device).eval()
        self.mean_var_norm = InputNormalization(**args["mean_var_norm"]).to(self.device).eval()
        self.embedding_model = ECAPA_TDNN(**args["embedding_model"]).eval()
        ckpt = self.source / "embedding_model.ckpt"
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EncoderModelError(f"{ckpt}: cannot be read as a weights-only torch file "
                                    f"({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
        # speechbrain's renaming of keys of older releases (plain dict surgery, no code from the directory).
        state = hook_on_loading_state_dict_checkpoint(state)
        try:
            self.embedding_model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise EncoderModelError(f"{ckpt}: does not fit ECAPA_TDNN({args['embedding_model']}) as read from "
                                    f"{self.source / 'hyperparams.yaml'}: {str(exc).splitlines()[0]}") from exc
        self.embedding_model.to(self.device)

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
        if self.model is not None:
            emb = self.model.encode_batch(batch.to(self.device), lens.to(self.device))
        else:
            # EncoderClassifier.encode_batch's computation (normalize=False), on the modules built above.
            batch, lens = batch.to(self.device), lens.to(self.device)
            feats = self.mean_var_norm(self.compute_features(batch), lens)
            emb = self.embedding_model(feats, lens)
        return torch.nn.functional.normalize(emb.squeeze(1).cpu(), dim=-1).numpy()


ENCODERS = {"ge2e": GE2ESpeakerEncoder, "ecapa": ECAPASpeakerEncoder}


def load_speaker_encoder(name: str, source: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                         cache_dir: str | os.PathLike | None = None, trust_yaml: bool = False) -> SpeakerEncoder:
    """``ge2e`` (resemblyzer weights; ``source`` may name another pretrained.pt) or ``ecapa`` (local dir).

    ``device``: ``cpu``, ``cuda[:N]``, ``auto`` (CUDA when present) or a ``torch.device``
    (:func:`gradtts.device.resolve_device`).

    ``trust_yaml`` (ecapa only): build the model by executing the directory's ``hyperparams.yaml``.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown speaker encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    if name == "ecapa":
        return ECAPASpeakerEncoder(source=source, device=device, cache_dir=cache_dir, trust_yaml=trust_yaml)
    if trust_yaml:
        raise ValueError(f"encoder_trust_yaml applies to the ecapa encoder only, not {name!r}")
    return ENCODERS[name](source=source, device=device, cache_dir=cache_dir)
