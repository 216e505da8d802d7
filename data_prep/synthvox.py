"""synthvox: an embedded multi-speaker English corpus made offline with flite and espeak-ng.

    python -m data_prep.synthvox DATA_DIR --voices 24 --utts-per-voice 40 [--first-voice 0 --seed 0 --jobs 2]

Voice k has a fixed recipe (engine, voice/accent, variant, pitch, rate) that depends only on k, so
corpora of different sizes share their voices. The first voices are flite's (awb, rms, slt, kal16),
then espeak-ng variants chosen by GE2E measurement to be far apart (see ``MEASURED_ESPEAK``), each
with an accent, pitch and rate. Sentences come from :mod:`data_prep.sentences`, seeded per voice.
Writes 22050 Hz 16-bit wavs under ``DATA_DIR/wav/``, a Kaldi data dir, and ``voices.tsv`` /
``voices.json`` with each speaker's recipe. Re-running skips finished files. Check how distinct the
voices are with ``python -m data_prep.synthvox_check DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
from gradtts.logs import setup_logging

from data_prep.sentences import generate_sentences

log = logging.getLogger(__name__)

FLITE_VOICES = ["awb", "rms", "slt", "kal16"]

# Voices 4-29 (espeak-ng accent, variant, pitch), chosen by measurement: GE2E embeddings of 4 sentences
# from each of 332 candidates (82 variants x pitch 25/50/75 in en-us, + en-gb), then farthest-point
# selection (each new voice least similar to those before it, one recipe per variant) for voices 4-23, and
# for 24-29 the three most dissimilar pairs among the rest (T:C pairs sv024:sv025, sv026:sv027,
# sv028:sv029 of egs/synthvox). Measured on the built corpus (30 voices x 40 utterances, accents and
# rates as below): GE2E centroid cosine among voices 0-23 mean 0.61, max 0.81; within the three pairs
# 0.52, 0.58, 0.58; every utterance nearest its own voice's centroid. The previous hand-made table gave
# mean 0.69, max 0.98 (sv013/sv028 indistinguishable) and 94 %. Accent barely moves GE2E (0.95-0.98
# between accents of one variant) but is kept as a speaker trait; plain en-gb is avoided because it makes
# different variants sound alike (0.99).
MEASURED_ESPEAK = [
    ("en-us", "anika", 75), ("en-us-nyc", "pablo", 75), ("en-gb-scotland", "Marco", 75),
    ("en-029", "Alicia", 75), ("en-gb-x-rp", "marcelo", 75), ("en-us", "Hugo", 25), ("en-us-nyc", "Lee", 50),
    ("en-gb-scotland", "kaukovalta", 50), ("en-029", "steph3", 50), ("en-gb-x-rp", "aunty", 25),
    ("en-us", "f5", 50), ("en-us-nyc", "m1", 50), ("en-gb-scotland", "travis", 25), ("en-029", "Andy", 75),
    ("en-gb-x-rp", "belinda", 75), ("en-us", "iven4", 75), ("en-us-nyc", "david", 75),
    ("en-gb-scotland", "grandma", 75), ("en-029", "edward", 75), ("en-gb-x-rp", "Storm", 25),
    # study pairs
    ("en-us", "Mario", 25), ("en-us-nyc", "f4", 75), ("en-gb-scotland", "iven2", 25), ("en-029", "klatt", 75),
    ("en-gb-x-rp", "quincy", 75), ("en-us", "shelby", 50),
]
# Further voices: the other usable variants, then every variant again in other accents and pitches (these
# later voices resemble earlier ones more: same variant, 0.86-0.97 by GE2E).
MORE_VARIANTS = ["antonio", "boris", "iven", "sandro", "AnxiousAndy", "Annie", "adam", "Nguyen", "victor",
                 "miguel", "norbert", "steph", "m2", "ed", "Jacky", "f1", "f2", "f3", "m3", "m4", "m5", "m6",
                 "m7", "m8", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "john", "paul", "linda", "grandpa",
                 "Andrea", "Alex", "Denis", "Diogo", "Gene", "Henrique", "Michael", "Mike", "benjamin",
                 "edward2", "gustave", "iven3", "michel", "pedro", "rob", "robert", "steph2", "zac", "croak"]
ESPEAK_ACCENTS = ["en-us", "en-us-nyc", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd"]
RATES = [175, 160, 190, 150, 185, 165, 200, 170, 155, 180]  # words per minute, spread over neighbours


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
    recipes = list(MEASURED_ESPEAK)
    pitches = [50, 30, 70, 40, 60, 20, 80]
    recipes += [(ESPEAK_ACCENTS[j % len(ESPEAK_ACCENTS)], v, pitches[j % len(pitches)])
                for j, v in enumerate(MORE_VARIANTS)]
    # Later rounds: every variant in every other accent with a shifted pitch.
    variants = [v for _, v, _ in MEASURED_ESPEAK] + MORE_VARIANTS
    for r in range(1, len(ESPEAK_ACCENTS)):
        for j, v in enumerate(variants):
            recipes.append((ESPEAK_ACCENTS[(j + r) % len(ESPEAK_ACCENTS)], v, pitches[(j + 2 * r) % len(pitches)]))
    seen = set()
    for accent, variant, pitch in recipes:
        if (accent, variant) in seen:
            continue
        seen.add((accent, variant))
        i = len(voices)
        voices.append(Voice(i, f"sv{i:03d}", "espeak-ng", accent, variant, pitch, RATES[i % len(RATES)]))
    return voices


def _espeak_variants() -> set[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    return {line.split()[4].split("/", 1)[-1] for line in out.splitlines()[1:] if len(line.split()) >= 5}


def _flite_voices() -> set[str]:
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    return set(out.split(":", 1)[-1].split())


def check_engines(voices: list[Voice]) -> None:
    """Fail with the install command when flite or espeak-ng (or a voice of the table) is missing.

    espeak-ng silently falls back to its default voice for an unknown variant name, so the variants are
    checked up front rather than trusted.
    """
    for engine in sorted({v.engine for v in voices}):
        if shutil.which(engine) is None:
            raise SystemExit(f"synthvox needs the program {engine!r}, which is not installed: "
                             f"run `apt-get install -y espeak-ng flite` (Debian/Ubuntu) and retry")
    espeak = [v for v in voices if v.engine == "espeak-ng"]
    missing = sorted({v.variant for v in espeak} - _espeak_variants()) if espeak else []
    if any(v.engine == "flite" for v in voices):
        missing += sorted({v.voice for v in voices if v.engine == "flite"} - _flite_voices())
    if missing:
        raise SystemExit(f"synthvox: voice(s) {', '.join(missing)} are not provided by the installed espeak-ng/flite "
                         "(the voice table was measured with Debian's espeak-ng 1.51 and flite 2.2); install those "
                         "packages or pick other voices with --first-voice")


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
        raise SystemExit(f"voices {first_voice}..{first_voice + n_voices - 1} requested, "
                         f"only 0..{len(table) - 1} exist")
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
    atomic_write_text(data_dir / "voices.json", json.dumps([asdict(v) for v in voices], indent=1) + "\n")
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
    setup_logging()
    t0 = time.time()
    d = build(a.data_dir, a.voices, a.utts_per_voice, a.first_voice, a.seed, a.jobs, not a.no_progress)
    log.info("synthvox: %d voices, %d utterances in %s (%.1f s)", len(d.speakers), len(d.utts), a.data_dir,
             time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
