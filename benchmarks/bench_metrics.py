"""Cost of the evaluation metrics on the same utterances in one run: GE2E embedding (the speaker scorer),
DNSMOS (gradtts.scoring.quality) and PocketSphinx ASR (gradtts.scoring.intelligibility), optionally Whisper.

Each metric loads once (``setup``), scores the first utterance once untimed-for-the-rate (``warm-up``: lazy
imports, JIT compilation, first allocations), then scores every utterance; the steady-state times give CPU
and wall seconds per second of audio and per study cell (a cell scores ``--cell`` generated sentences, 10 by
default, of the utterances' mean length), and each metric's ratio to GE2E. CPU time is the process's (all
its threads), so it is the number to trust on a shared machine; wall time depends on the load.

DNSMOS's cost is per 9.01 s window, not per second: a clip shorter than a window is doubled until it fills
one and scored every 1 s, so a 3 s sentence costs 3 windows and a 2 s one 6 (the windows column).

    python benchmarks/bench_metrics.py --audio DIR_OR_FILE ... --threads 1
    python benchmarks/bench_metrics.py --audio exp/.../synth/step_0000120 --whisper /models/base.en.pt

``--audio`` takes audio files and folders (searched for .wav and .flac); utterances between ``--min-seconds``
and ``--max-seconds`` are kept, the first ``--count`` in name order. The default is the reading in
tests/data (one 2 s utterance, scored ``--count`` times).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Callable

print = functools.partial(print, flush=True)  # noqa: A001 - progress visible when piped

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AUDIO = ROOT / "tests" / "data" / "19-198-0000.flac"
AUDIO_SUFFIXES = (".wav", ".flac")


def find_audio(sources: list[str], min_s: float, max_s: float, count: int) -> list[Path]:
    """The first ``count`` audio files (name order) of ``sources`` lasting between ``min_s`` and ``max_s``."""
    import soundfile as sf

    files = []
    for src in map(Path, sources):
        if src.is_dir():
            files += sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif src.is_file():
            files.append(src)
        else:
            sys.exit(f"error: --audio {src}: no such file or folder")
    kept = [p for p in files if min_s <= sf.info(str(p)).duration <= max_s][:count]
    if not kept:
        sys.exit(f"error: no audio of {min_s}-{max_s} s in {', '.join(sources)}: widen --min-seconds/--max-seconds")
    return kept


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(CPU s of this process, wall s, result) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def dnsmos_windows(seconds: float) -> int:
    """How many 9.01 s windows DNSMOS scores for a clip of ``seconds`` (doubling a short clip first)."""
    while seconds < 9.01:
        seconds *= 2
    return int(int(seconds) - 9.01) + 1


def metrics(whisper: str | None) -> dict[str, tuple[Callable[[], object], Callable[[object, list], object]]]:
    """``{name: (load() -> model, run(model, wavs) -> result)}`` for each metric, GE2E first."""
    from gradtts.scoring import intelligibility, quality
    from gradtts.scoring.encoders import SAMPLE_RATE, load_speaker_encoder

    sr = SAMPLE_RATE
    out = {
        # As the scorer embeds generated sentences: one batch, no cache (cache_dir is never written by embed_wavs).
        "ge2e": (lambda: load_speaker_encoder("ge2e"), lambda enc, wavs: enc.embed_wavs(wavs, sr)),
        "dnsmos": (lambda: quality._model(quality.default_threads()),
                   lambda _, wavs: [quality.dnsmos(w, sr) for w in wavs]),
        "pocketsphinx": (lambda: intelligibility.load_asr("pocketsphinx"),
                         lambda asr, wavs: [asr.transcribe(w, sr) for w in wavs]),
    }
    if whisper:
        out["whisper"] = (lambda: intelligibility.load_asr("whisper", source=whisper),
                          lambda asr, wavs: [asr.transcribe(w, sr) for w in wavs])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", nargs="+", default=[str(DEFAULT_AUDIO)], help="audio files or folders")
    p.add_argument("--count", type=int, default=10, help="utterances to score (the default reading is repeated)")
    p.add_argument("--min-seconds", type=float, default=1.5)
    p.add_argument("--max-seconds", type=float, default=4.5)
    p.add_argument("--cell", type=int, default=10, help="generated sentences one study cell scores")
    p.add_argument("--threads", type=int, default=None,
                   help="torch and onnxruntime threads (default: OMP_NUM_THREADS, else each library's default)")
    p.add_argument("--whisper", default=None, help="also time Whisper from this local .pt checkpoint")
    a = p.parse_args(argv)
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)  # read by quality.default_threads for onnxruntime
    import numpy as np
    import torch

    from gradtts.audio import load_audio

    if a.threads:
        torch.set_num_threads(a.threads)
    paths = find_audio(a.audio, a.min_seconds, a.max_seconds, a.count)
    wavs = [load_audio(path, 16000)[0] for path in paths]
    if len(wavs) < a.count:  # too few files: cycle through them so every metric sees `count` utterances
        wavs = [wavs[i % len(wavs)] for i in range(a.count)]
    seconds = [len(w) / 16000 for w in wavs]
    audio_s, mean_s = float(sum(seconds)), float(np.mean(seconds))
    print(f"{len(wavs)} utterances from {len(paths)} files, {audio_s:.1f} s of audio (mean {mean_s:.2f} s); "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs")
    rows = []
    for name, (load, run) in metrics(a.whisper).items():
        setup_cpu, setup_wall, model = timed(load)
        warm_cpu, _, _ = timed(lambda: run(model, wavs[:1]))
        cpu, wall, _ = timed(lambda: run(model, wavs))
        rows.append(dict(name=name, setup=setup_cpu, setup_wall=setup_wall, warm=warm_cpu, cpu_per_s=cpu / audio_s,
                         wall_per_s=wall / audio_s, cpu_cell=cpu / len(wavs) * a.cell,
                         wall_cell=wall / len(wavs) * a.cell))
        print(f"  {name}: {cpu:.2f} CPU s, {wall:.2f} wall s for {len(wavs)} utterances")
    base = rows[0]
    windows = sum(dnsmos_windows(s) for s in seconds) / len(seconds)
    print(f"\nper second of audio and per cell ({a.cell} sentences of {mean_s:.2f} s; DNSMOS scores {windows:.1f} "
          "windows per sentence)")
    header = (f"{'metric':<13}{'setup CPU s':>12}{'warm-up CPU s':>14}{'CPU s/audio s':>14}{'wall s/audio s':>15}"
              f"{'CPU s/cell':>11}{'wall s/cell':>12}{'CPU x GE2E':>11}{'wall x GE2E':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['name']:<13}{r['setup']:>12.2f}{r['warm']:>14.2f}{r['cpu_per_s']:>14.3f}{r['wall_per_s']:>15.3f}"
              f"{r['cpu_cell']:>11.2f}{r['wall_cell']:>12.2f}{r['cpu_per_s'] / base['cpu_per_s']:>11.1f}"
              f"{r['wall_per_s'] / base['wall_per_s']:>12.1f}")


if __name__ == "__main__":
    main()
