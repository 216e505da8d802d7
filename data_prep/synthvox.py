"""synthvox: an embedded multi-speaker English corpus made offline with flite and espeak-ng.

    python -m data_prep.synthvox DATA_DIR --voices 24 --utts-per-voice 40 [--first-voice 0 --seed 0 --jobs 2]

Voice k has a fixed recipe (engine, voice/accent, variant, pitch, rate) that depends only on k, so
corpora of different sizes share their voices. The first voices are flite's (awb, rms, slt, kal16),
then espeak-ng accents x variants with spread-out pitch and rate. Sentences come from
:mod:`data_prep.sentences`, seeded per voice. Writes 22050 Hz 16-bit wavs under ``DATA_DIR/wav/``,
a Kaldi data dir, and ``voices.tsv`` with each speaker's recipe. Re-running skips finished files.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

from gradtts.audio import SAMPLE_RATE, load_audio, peak_normalize, write_wav
from gradtts.data.datadir import DataDir, write_datadir
from gradtts.io import atomic_write_text

from data_prep.sentences import generate_sentences

FLITE_VOICES = ["awb", "rms", "slt", "kal16"]
ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-us-nyc"]
ESPEAK_VARIANTS = ["m1", "f1", "m3", "f2", "m5", "f3", "m7", "f4", "klatt2", "f5", "m2", "m4", "m6", "klatt4",
                   "grandma", "grandpa", "adam", "linda", "paul", "belinda", "john", "steph", "david", "annie"]


@dataclass(frozen=True)
class Voice:
    index: int
    speaker: str
    engine: str          # flite | espeak-ng
    voice: str           # flite voice or espeak-ng accent
    variant: str = ""
    pitch: int = 0       # espeak-ng -p (0-99)
    rate: int = 0        # espeak-ng -s (words per minute)

    def command(self, text: str, out: str) -> list[str]:
        if self.engine == "flite":
            return ["flite", "-voice", self.voice, "-t", text, "-o", out]
        return ["espeak-ng", "-v", f"{self.voice}+{self.variant}", "-p", str(self.pitch), "-s", str(self.rate),
                "-w", out, text]


def voice_table() -> list[Voice]:
    """All voice recipes in their fixed order (index k is the same whatever corpus size is asked)."""
    voices = [Voice(i, f"sv{i:03d}", "flite", v) for i, v in enumerate(FLITE_VOICES)]
    rng = random.Random("synthvox-voices-v1")
    pitches = list(range(20, 81, 5))
    rates = list(range(135, 196, 10))
    # Round r pairs every variant with a different accent, so neighbouring voices differ in both.
    for r in range(len(ESPEAK_ACCENTS)):
        for j, variant in enumerate(ESPEAK_VARIANTS):
            i = len(voices)
            accent = ESPEAK_ACCENTS[(j + r) % len(ESPEAK_ACCENTS)]
            voices.append(Voice(i, f"sv{i:03d}", "espeak-ng", accent, variant, rng.choice(pitches), rng.choice(rates)))
    return voices


def check_engines(voices: list[Voice]) -> None:
    """Fail with the install command when flite or espeak-ng is missing."""
    for engine in sorted({v.engine for v in voices}):
        if shutil.which(engine) is None:
            raise SystemExit(f"synthvox needs the program {engine!r}, which is not installed: "
                             f"run `apt-get install -y espeak-ng flite` (Debian/Ubuntu) and retry")


def _synthesise(job: tuple[Voice, str, str]) -> str | None:
    voice, text, out = job
    if Path(out).is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        proc = subprocess.run(voice.command(text, raw), capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(raw):
            return f"{out}: {' '.join(voice.command(text, raw))} failed: {proc.stderr.strip()[:200]}"
        wav, _ = load_audio(raw, SAMPLE_RATE)
    write_wav(out, peak_normalize(wav, 0.9), SAMPLE_RATE)
    return None


def build(data_dir: str | os.PathLike, n_voices: int, utts_per_voice: int, first_voice: int = 0, seed: int = 0,
          jobs: int = 1, progress: bool = True) -> DataDir:
    """Synthesise the corpus into ``data_dir`` and return its data dir description."""
    table = voice_table()
    if first_voice < 0 or first_voice + n_voices > len(table):
        raise SystemExit(f"voices {first_voice}..{first_voice + n_voices - 1} requested, only 0..{len(table) - 1} exist")
    voices = table[first_voice:first_voice + n_voices]
    check_engines(voices)
    data_dir = Path(data_dir)
    wav_root = (data_dir / "wav").resolve()
    d = DataDir()
    jobs_list = []
    for v in voices:
        for i, text in enumerate(generate_sentences(utts_per_voice, f"{seed}-{v.index}")):
            utt = f"{v.speaker}_{i:04d}"
            out = str(wav_root / v.speaker / f"{utt}.wav")
            d.add(utt, v.speaker, out, text)
            jobs_list.append((v, text, out))
    from tqdm import tqdm

    errors = []
    with Pool(max(1, jobs)) as pool:
        for err in tqdm(pool.imap_unordered(_synthesise, jobs_list, chunksize=4), total=len(jobs_list),
                        desc="synthvox", unit="utt", disable=not progress):
            if err:
                errors.append(err)
    if errors:
        raise SystemExit(f"{len(errors)} utterance(s) failed, e.g.:\n  " + "\n  ".join(errors[:5]))
    write_datadir(data_dir, d)
    header = "\t".join(asdict(voices[0])) + "\n"
    atomic_write_text(data_dir / "voices.tsv", header + "".join("\t".join(str(x) for x in asdict(v).values()) + "\n"
                                                                 for v in voices))
    return d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--voices", type=int, default=24, help="number of voices (default 24)")
    p.add_argument("--first-voice", type=int, default=0, help="index of the first voice (default 0)")
    p.add_argument("--utts-per-voice", type=int, default=40)
    p.add_argument("--seed", type=int, default=0, help="sentence seed")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    t0 = time.time()
    d = build(a.data_dir, a.voices, a.utts_per_voice, a.first_voice, a.seed, a.jobs, not a.no_progress)
    print(f"synthvox: {len(d.speakers)} voices, {len(d.utts)} utterances in {a.data_dir} ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
